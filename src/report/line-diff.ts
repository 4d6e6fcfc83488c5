/**
 * A unified diff of two texts by lines (longest common subsequence), with `context` lines around
 * each change: enough for the report's lineage view, where programs are a few hundred lines.
 */
export function unifiedDiff(before: string, after: string, context = 3): string {
  const a = before.split('\n');
  const b = after.split('\n');
  const n = a.length;
  const m = b.length;
  // LCS lengths from the end; n·m is small (candidate files), so the table is cheap.
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * (m + 1) + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * (m + 1) + j + 1]! + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
  const ops: { op: ' ' | '-' | '+'; line: string; ai: number; bi: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) ops.push({ op: ' ', line: a[i]!, ai: i++, bi: j++ });
    // Removals before additions (the usual reading order of a replaced line).
    else if (j < m && (i === n || lcs[i * (m + 1) + j + 1]! > lcs[(i + 1) * (m + 1) + j]!))
      ops.push({ op: '+', line: b[j]!, ai: i, bi: j++ });
    else ops.push({ op: '-', line: a[i]!, ai: i++, bi: j });
  }
  const changed = ops.map((o, k) => (o.op !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (changed.length === 0) return '';
  const out: string[] = [];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = Math.min(ops.length, changed[k]! + context + 1);
    while (k + 1 < changed.length && changed[k + 1]! - context <= end) {
      k++;
      end = Math.min(ops.length, changed[k]! + context + 1);
    }
    k++;
    const hunk = ops.slice(start, end);
    const aStart = hunk[0]!.ai + 1;
    const bStart = hunk[0]!.bi + 1;
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    out.push(`@@ -${aStart},${aLen} +${bStart},${bLen} @@`);
    for (const o of hunk) out.push(`${o.op}${o.line}`);
  }
  return out.join('\n');
}

/** The diff of two candidates file by file (files only one side has are shown whole). */
export function candidateDiff(before: Record<string, string>, after: Record<string, string>): string {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const parts: string[] = [];
  for (const name of names) {
    const d = unifiedDiff(before[name] ?? '', after[name] ?? '');
    if (d) parts.push(`--- a/${name}\n+++ b/${name}\n${d}`);
  }
  return parts.join('\n');
}
