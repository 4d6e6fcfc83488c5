/**
 * "Did you mean …?" for a mistyped name (a config key, a flag): the closest of the names that exist,
 * at most two edits away (a dropped, added, changed or swapped-by-two letter), or undefined.
 */
export function closest(word: string, names: readonly string[], maxEdits = 2): string | undefined {
  let best: string | undefined;
  let bestEdits = maxEdits + 1;
  for (const name of names) {
    const edits = editDistance(word, name);
    if (edits < bestEdits) [best, bestEdits] = [name, edits];
  }
  return best;
}

/** Levenshtein distance: the fewest one-letter insertions, deletions and substitutions from a to b. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}
