import { afterEach, describe, expect, it } from 'vitest';
import { withIo } from '../src/cli/io.js';
import { createCli } from '../src/cli/main.js';
import { setWarningSink, warn } from '../src/util/warn.js';

let previous: ReturnType<typeof setWarningSink> | undefined;
afterEach(() => {
  if (previous) setWarningSink(previous);
});

describe('library warnings', () => {
  it('are one line prefixed adrs:, through the sink', () => {
    const lines: string[] = [];
    previous = setWarningSink((line) => lines.push(line));
    warn('a worker thread stopped');
    expect(lines).toEqual(['adrs: a worker thread stopped']);
  });

  it('go to the stderr of the CLI run they happen in', async () => {
    const mine: string[] = [];
    const other: string[] = [];
    const io = (into: string[]) => ({ stdout: () => {}, stderr: (t: string) => void into.push(t) });
    previous = setWarningSink(() => {}); // kept to restore; createCli replaces the placeholder
    createCli(io(mine)); // points the sink at the io of whichever run is current
    await Promise.all([
      withIo(io(mine), ['x'], async () => warn('in my run')),
      withIo(io(other), ['y'], async () => warn('in the other run')),
    ]);
    expect(mine).toEqual(['adrs: in my run\n']);
    expect(other).toEqual(['adrs: in the other run\n']);
  });
});
