import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NativeStderrFilter } from '../src/cli/launch/native-stderr-filter.js';
import { wantsVerbose } from '../src/cli/verbose.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');
const LAUNCH = join(import.meta.dirname, 'fixtures', 'launcher', 'launch.mjs');
const WARNING =
  'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';

function filtered(chunks: string[]): { out: string; dropped: number } {
  const filter = new NativeStderrFilter();
  const out = chunks.map((c) => filter.push(c)).join('') + filter.end();
  return { out, dropped: filter.dropped };
}

describe('when the CLI runs without the launcher', () => {
  it('--verbose, in either spelling, asks for everything', () => {
    expect(wantsVerbose(['bench', '--verbose'])).toBe(true);
    expect(wantsVerbose(['bench', '--verbose=true'])).toBe(true);
    expect(wantsVerbose(['bench', '--verbose=false', '--json'])).toBe(false);
  });

  it('a malformed launcher variable leaves the process as it was (not launched), without a crash', () => {
    const child = join(import.meta.dirname, 'fixtures', 'launcher', 'child.mjs');
    for (const fds of ['3,x', 'x', '1,2', '3']) {
      const r = spawnSync(process.execPath, [child, 'streams'], {
        encoding: 'utf8',
        env: { ...process.env, ADRS_LAUNCHED_FDS: fds },
      });
      expect(r.status, fds).toBe(0);
      expect(r.stderr, fds).toContain('js stderr launched=false');
    }
  });
});

describe('native stderr filter', () => {
  const stream = `vulkan loader: something real\n${WARNING}${WARNING}\r[3s] progress${WARNING}Warning: keep me\nW`;
  const expected = 'vulkan loader: something real\n\r[3s] progress' + 'Warning: keep me\nW';

  it("drops exactly Dawn's start-up warnings and keeps everything else", () => {
    expect(filtered([stream])).toEqual({ out: expected, dropped: 3 });
  });

  it('gives the same result wherever the stream is split', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (const j of [i, Math.min(stream.length, i + 7), Math.min(stream.length, i + 61)]) {
        const { out, dropped } = filtered([stream.slice(0, i), stream.slice(i, j), stream.slice(j)]);
        expect(out, `split at ${i}, ${j}`).toBe(expected);
        expect(dropped).toBe(3);
      }
    }
  });

  it('forwards text that cannot become a warning at once, not at the end', () => {
    const filter = new NativeStderrFilter();
    expect(filter.push('\r[12s] evaluating 3/8')).toBe('\r[12s] evaluating 3/8');
    expect(filter.push('Warn')).toBe('');
    expect(filter.push('ing: maxDynamicUniform')).toBe('');
    expect(
      filter.push(
        'BuffersPerPipelineLayout artificially reduced from 9 to 8 to fit dynamic offset allocation limit.\nnext',
      ),
    ).toBe('next');
    // Another program's "Warning: " line cannot become one of Dawn's: it is not held for its end.
    expect(filter.push('\nWarning: disk almost full')).toBe('\nWarning: disk almost full');
    expect(filter.push(' (93%)\n')).toBe(' (93%)\n');
    // Nor is a line that began like one but grew longer than any of Dawn's.
    const long = `Warning: maxDynamic${'x'.repeat(300)}`;
    expect(filter.push(long)).toBe(long);
  });
});

/** util-linux script(1), to run the launcher under a pseudo-terminal. */
const hasScript = spawnSync('script', ['--version']).status === 0;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** In its own process group, as a terminal's foreground job. */
  detached?: boolean;
  /** A pipe for stdin (else /dev/null). */
  stdin?: boolean;
  /** Read nothing of stderr until readStderr() is called (so the launcher's writes queue up). */
  holdStderr?: boolean;
}

function run(
  args: string[],
  options: RunOptions = {},
): { child: ChildProcess; done: Promise<Finished>; readStderr: () => void } {
  const child = spawn(process.execPath, [LAUNCH, ...args], {
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  const readStderr = () =>
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
  if (!options.holdStderr) readStderr();
  const done = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, readStderr };
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    child.stdout?.on('data', (c: string) => {
      text += c;
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
  });
}

/** Runs `mode` as a terminal's foreground job and, once the child says 'ready', signals the job as the terminal does. */
async function signalGroupWhenReady(mode: string, signal: NodeJS.Signals): Promise<Finished> {
  const { child, done } = run([mode], { detached: true });
  expect(await firstLine(child)).toBe('ready');
  process.kill(-(child.pid as number), signal);
  return done;
}

describe('launcher', () => {
  it("hands JavaScript stderr through untouched, filters native stderr, exits with the child's code", async () => {
    const r = await run(['streams', '3']).done;
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('stdout line\n');
    expect(r.stderr.split('\n').sort()).toEqual(
      ['', 'js stderr launched=true', 'native after', 'native before'].sort(),
    );
  });

  it('writes every byte of a JavaScript stderr burst through a full pipe (the shared descriptor is non-blocking)', async () => {
    const lines = 100_000;
    const r = await run(['js-flood', String(lines)]).done;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(Array.from({ length: lines }, (_, i) => `js ${i}\n`).join(''));
  });

  it('dies by the signal that killed the child', async () => {
    const r = await run(['signal', 'SIGTERM']).done;
    expect(r.signal).toBe('SIGTERM');
  });

  it("delivers a terminal's Ctrl-C (SIGINT to the whole process group) to the child exactly once", async () => {
    const r = await signalGroupWhenReady('count-sigint', 'SIGINT');
    expect(r.stdout).toBe('ready\nsigint 1\n');
    expect(r.code).toBe(0);
  });

  it('writes all forwarded native stderr before dying by the signal that killed the child', async () => {
    // The test reads nothing until the launcher has reaped the child (its 'close' follows at once),
    // so the launcher still has most of the 1.3 MB queued for its stderr: dying then would drop it.
    // (Were the test to start reading sooner, the queue could drain in time and the old launcher
    // pass; it never fails a launcher that flushes.)
    const lines = 100_000;
    const { child, done, readStderr } = run(['flood-then-signal', String(lines)], { holdStderr: true });
    const pid = Number((await firstLine(child)).split(' ')[1]);
    while (processState(pid) !== 'gone') await new Promise(setImmediate);
    readStderr();
    const r = await done;
    expect(r.signal).toBe('SIGTERM');
    expect(r.stderr).toBe(Array.from({ length: lines }, (_, i) => `native ${i}\n`).join(''));
  });

  it('outlives an EPIPE on its stderr (native writes nobody reads fail unseen, as without it)', async () => {
    const { child, done } = run(['native-after-stderr-closed'], { stdin: true });
    expect(await firstLine(child)).toBe('ready');
    child.stderr?.destroy();
    child.stdin?.end('go\n');
    const r = await done;
    expect([r.code, r.signal]).toEqual([0, null]);
    expect(r.stdout).toBe('ready\ndone\n');
  });

  it("passes a terminal's resize (SIGWINCH to the foreground group) on to the child, which has no terminal of its own", async () => {
    const r = await signalGroupWhenReady('winch', 'SIGWINCH');
    expect(r.stdout).toBe('ready\nresized\n');
    expect(r.code).toBe(0);
  });

  it.skipIf(!hasScript)(
    "keeps the child's terminal stderr at the terminal's width after a resize (under a pseudo-terminal)",
    async () => {
      // script(1) gives the launcher a terminal; the child resizes it, the launcher forwards the
      // SIGWINCH, and the child's stderr must report the new width.
      const command = [process.execPath, LAUNCH, 'resize-terminal', '57']
        .map((a) => JSON.stringify(a))
        .join(' ');
      // Asynchronous, so that a launcher that never forwards the resize fails by vitest's timeout.
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
      });
      const code = await new Promise((resolve) => child.on('close', resolve));
      expect(code).toBe(0);
      expect(stdout.trim()).toBe('stderr columns 57');
    },
  );

  it('passes a SIGTERM sent to the launcher alone on to the child', async () => {
    const { child, done } = run(['wait']);
    await firstLine(child);
    child.kill('SIGTERM');
    expect((await done).signal).toBe('SIGTERM');
  });

  it('takes the child with it when the launcher is killed outright', async () => {
    const { child, done } = run(['wait']);
    const pid = Number((await firstLine(child)).split(' ')[1]);
    child.kill('SIGKILL');
    // stdout is shared with the child: it closes only once the child is gone too.
    const r = await done;
    expect(r.signal).toBe('SIGKILL');
    // Closing stdout is the first step of its exit; the rest (zombie, then gone) follows. A child
    // that survived would keep this test waiting until vitest's timeout fails it.
    while (!['gone', 'Z'].includes(processState(pid))) await new Promise(setImmediate);
  });
});

/** 'gone', or the state letter from /proc (a killed orphan is a zombie until init reaps it). */
function processState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] as string;
  } catch {
    return 'gone';
  }
}

describe('adrs on a real adapter', () => {
  const raw = spawnSync(process.execPath, [BIN, 'devices'], {
    encoding: 'utf8',
    env: { ...process.env, ADRS_NATIVE_STDERR: 'show' },
  });
  const dawnWarns = /artificially reduced/.test(raw.stderr);

  it.skipIf(!dawnWarns)(
    "keeps Dawn's start-up warnings off the screen (this adapter makes Dawn print them)",
    () => {
      const r = spawnSync(process.execPath, [BIN, 'devices'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(raw.stdout);
      expect(r.stderr).toBe('');
    },
  );
});
