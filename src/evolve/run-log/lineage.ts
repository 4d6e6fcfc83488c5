/**
 * A program's line of first parents, from it back to the seed: the one lineage walk behind the
 * report, best/lineage.json and the report's check of it. `missing` names a parent that `lookup`
 * does not know (the chain stops there); a cycle (only a damaged record can have one) stops it too.
 */
export function walkLineage<T extends { id: string; parents: readonly string[] }>(
  start: T | null | undefined,
  lookup: (id: string) => T | undefined,
): { chain: T[]; missing: string | null } {
  const chain: T[] = [];
  const seen = new Set<string>();
  for (let p = start ?? undefined; p && !seen.has(p.id); ) {
    chain.push(p);
    seen.add(p.id);
    const up = p.parents[0];
    if (up === undefined) break;
    const next = lookup(up);
    if (!next) return { chain, missing: up };
    p = next;
  }
  return { chain, missing: null };
}
