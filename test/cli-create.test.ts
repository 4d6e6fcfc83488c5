import { describe, expect, it } from 'vitest';
import { commands } from '../src/cli/commands/index.js';
import { commandLine, setExitCode, withIo } from '../src/cli/io.js';
import { createCli, usageMessage } from '../src/cli/main.js';
import { errorReport } from '../src/cli/report-error.js';
import { UserError } from '../src/util/errors.js';
import { declaredOptions, runAdrs } from './helpers/cli.js';

describe('createCli', () => {
  it('runs a command in this process with its output on the injected streams', async () => {
    const r = await runAdrs('trace', 'info', 'sglang-r1-prefill-in512', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'sglang-r1-prefill-in512', layers: 58 });
  });

  it('keeps the output of two concurrent runs apart', async () => {
    const [a, b] = await Promise.all([
      runAdrs('trace', 'info', 'sglang-r1-prefill-in512', '--json'),
      runAdrs('trace', 'info', 'synthetic-v4-windows', '--json'),
    ]);
    expect(JSON.parse(a.stdout).name).toBe('sglang-r1-prefill-in512');
    expect(JSON.parse(b.stdout).name).toBe('synthetic-v4-windows');
  });

  it('reports a user error in one line and exit code 1, without exiting the process', async () => {
    const r = await runAdrs('trace', 'info', 'no-such-trace-here');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^adrs: no-such-trace-here: no such file, and not a bundled trace/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('treats a usage error (unknown flag, no command) as the user’s', async () => {
    const unknown = await runAdrs('trace', 'info', 'sglang-r1-prefill-in512', '--no-such-flag');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^adrs: Unknown argument/);
    expect(unknown.stderr).not.toMatch(/internal error/);
    const none = await runAdrs();
    expect(none).toMatchObject({ code: 1, stderr: 'adrs: name a command; `adrs --help` lists them\n' });
  });

  it('adds the stack under --verbose; a bug (a plain Error) gets the hint to rerun with it', async () => {
    const verbose = await runAdrs('trace', 'info', '/', '--verbose');
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(
      /^adrs: \/: is a folder; name a trace file \(\.json\)\nUserError: .*\n +at /,
    );
    expect(errorReport(new Error('boom'), false)).toBe(
      'adrs: boom\n(an internal error: run again with --verbose for details)\n',
    );
    expect(errorReport(new UserError('bad flag'), false)).toBe('adrs: bad flag\n');
  });

  it('declares every command on one parser', () => {
    const parser = createCli().parser([]);
    const names = commands.map((c) => String(c.command).split(' ')[0]);
    expect(names).toEqual(
      expect.arrayContaining(['bench', 'simulate', 'rebalance', 'profile', 'eval', 'evolve']),
    );
    expect(declaredOptions(parser)).toContain('verbose');
  });
});

describe('createCli --help and --version', () => {
  it('print on the injected stdout and exit 0 without ending the process', async () => {
    const help = await runAdrs('--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^adrs <command> \[options\]\n/);
    expect(help.stdout).toMatch(/adrs evolve/);
    const sub = await runAdrs('trace', '--help');
    expect(sub).toMatchObject({ code: 0, stderr: '' });
    expect(sub.stdout).toMatch(/adrs trace list/);
    const version = await runAdrs('--version');
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('a mistyped flag', () => {
  it('names the close flag of the command being parsed', async () => {
    const r = await runAdrs('trace', 'info', 'sglang-r1-prefill-in512', '--jsn');
    expect(r).toMatchObject({ code: 1, stderr: 'adrs: Unknown argument: jsn (did you mean --json?)\n' });
    const evolve = await runAdrs('evolve', '--seeed', '3');
    expect(evolve.stderr).toBe('adrs: Unknown argument: seeed (did you mean --seed?)\n');
  });

  it('hints only flags that were given as flags, each by name when there are several', () => {
    const declared = ['json', 'seed', 'verbose'];
    const hint = (message: string, argv: string[]) => usageMessage(message, declared, argv);
    expect(hint('Unknown argument: jsn', ['--jsn'])).toBe('Unknown argument: jsn (did you mean --json?)');
    expect(hint('Unknown argument: jsn', ['--jsn=1'])).toBe('Unknown argument: jsn (did you mean --json?)');
    // A stray positional is no flag.
    expect(hint('Unknown argument: jsn', ['jsn'])).toBe('Unknown argument: jsn');
    expect(hint('Unknown arguments: sed, zzzzz', ['--sed', '1', '--zzzzz'])).toBe(
      'Unknown arguments: sed, zzzzz (did you mean --seed for sed?)',
    );
    expect(hint('Missing required argument: trace', [])).toBe('Missing required argument: trace');
  });

  it('names the mistyped command beside the one meant (yargs says only "Did you mean evolve?")', async () => {
    expect(await runAdrs('evolv')).toMatchObject({
      code: 1,
      stderr: 'adrs: Unknown command: evolv (did you mean evolve?)\n',
    });
    const sub = await runAdrs('trace', 'inf', 'sglang-r1-prefill-in512');
    expect(sub.stderr).toBe('adrs: Unknown command: inf (did you mean info?)\n');
  });
});

describe('the io of a run', () => {
  it("knows its own command line, not the test process's (bench records it)", async () => {
    const silent = { stdout: () => {}, stderr: () => {} };
    const seen: string[] = [];
    await Promise.all([
      withIo(silent, ['bench', '--trace', 'a'], async () => void seen.push(commandLine())),
      withIo(silent, ['bench', '--trace', 'b'], async () => void seen.push(commandLine())),
    ]);
    expect(seen.sort()).toEqual(['adrs bench --trace a', 'adrs bench --trace b']);
  });

  it('refuses an exit code set outside a run, where nothing would read it', () => {
    expect(() => setExitCode(1)).toThrow('setExitCode called outside a CLI run');
  });
});
