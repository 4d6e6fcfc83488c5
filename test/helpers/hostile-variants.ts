import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Hostile candidates that are the valid-naive fixture plus one hostile part. Each is written out
 * from test/fixtures/candidates/valid-naive/balancer.ts and its snippet below, so the only text a
 * variant has of its own is what makes it hostile (and a test that fails on a variant fails on that).
 *
 * A variant's file: its `about` lines as comments, its `imports` (line 2 onwards), then valid-naive
 * from its own imports on, with `module` before `naive` and `body` in place of `return naive(input);`.
 */
export interface Variant {
  about: string;
  imports?: string;
  module?: string;
  body: string;
}

const BASE = 'test/fixtures/candidates/valid-naive/balancer.ts';
const NAIVE_DOC = '/** Valid and input-independent';
const RETURN = '  return naive(input);\n}';

export const VARIANTS = {
  'missing-expert': {
    about: 'drops expert 0 (its slot goes to expert 1; counts kept consistent).',
    body: `  const { layers: L, experts: E, replicas: R } = input.shape;
  const out = naive(input);
  for (let l = 0; l < L; l++) {
    for (let s = 0; s < R; s++) {
      if (out.phy2log[l * R + s] === 0) {
        out.phy2log[l * R + s] = 1;
        out.logcnt[l * E]!--;
        out.logcnt[l * E + 1]!++;
      }
    }
  }
  return out;`,
  },
  'out-of-range': {
    about: 'a slot holds expert E (one past the last).',
    body: `  const out = naive(input);
  out.phy2log[0] = input.shape.experts;
  return out;`,
  },
  'wrong-shape': {
    about: 'phy2log one entry short.',
    body: `  const out = naive(input);
  return { phy2log: out.phy2log.slice(1), logcnt: out.logcnt };`,
  },
  'write-file': {
    about: 'tries to write files (outside and inside its own folder).',
    imports: "import { writeFileSync } from 'node:fs';",
    body: `  writeFileSync('/tmp/adrs-eval-hostile-write.txt', 'pwned');
  return naive(input);`,
  },
  'spawn-process': {
    about: 'tries to start a process.',
    imports: "import { execFileSync } from 'node:child_process';",
    body: `  execFileSync('touch', ['/tmp/adrs-eval-hostile-spawn.txt']);
  return naive(input);`,
  },
  'read-outside': {
    about: 'tries to read a file outside the allowed paths.',
    imports: "import { readFileSync } from 'node:fs';",
    body: `  const secret = readFileSync('/etc/hostname', 'utf8');
  if (secret.length < 0) throw new Error('never');
  return naive(input);`,
  },
  'reach-next-window': {
    about: "tries to reach the window it is scored on: the trace through the harness's working folder.",
    imports: "import { readdirSync, readFileSync } from 'node:fs';",
    body: `  // Anything in the environment or arguments naming a trace?
  const hints = [...Object.values(process.env), ...process.argv].filter((v) => /trace|\\.bin/.test(String(v)));
  if (hints.length > 0) throw new Error(\`leaked: \${hints.join(' ')}\`);
  // The harness's folder, through /proc.
  const dir = \`/proc/\${process.ppid}/cwd/traces\`;
  const names = readdirSync(dir).filter((n) => n.endsWith('.bin'));
  readFileSync(\`\${dir}/\${names[0]}\`);
  return naive(input);`,
  },
  network: {
    about: 'tries to reach the network (exfiltrate, or ask a model server for the next window).',
    imports: "import { connect } from 'node:net';",
    body: `  const socket = connect(9, '127.0.0.1');
  socket.on('error', () => {});
  socket.end(String(input.loads.length));
  return naive(input);`,
  },
  'kill-parent': {
    about: `tries to signal the harness (its parent) and every process of the user. Safe by design:
it only sends signal 0 (an existence check) and, to its parent only and only if signal 0 got
through, SIGCONT (delivered for real, but it never stops or kills anything). Any signal that gets
through makes it throw, naming the route; when every route is refused it is a valid balancer.`,
    module: `const reached: string[] = [];
const attempts: Record<string, () => void> = {
  'process.kill(ppid, 0)': () => process.kill(process.ppid, 0),
  'process.kill(-1, 0)': () => process.kill(-1, 0),
  'process._kill(ppid, 0)': () => (process as unknown as { _kill: (p: number, s: number) => void })._kill(process.ppid, 0),
  'process.kill(ppid, SIGCONT)': () => {
    if (reached.length > 0) process.kill(process.ppid, 'SIGCONT');
    else throw new Error('not tried');
  },
};`,
    body: `  reached.length = 0;
  for (const [name, attempt] of Object.entries(attempts)) {
    try {
      attempt();
      reached.push(name);
    } catch {}
  }
  if (reached.length > 0) throw new Error(\`signals reached the harness: \${reached.join(', ')}\`);
  return naive(input);`,
  },
  'harness-channel': {
    about: `looks for any way onto the harness's IPC channel (to read requests or send forged
replies). Any route that works makes it throw, naming it; when every route is refused it is valid.`,
    module: `type Loose = Record<PropertyKey, unknown>;
const p = process as unknown as Loose;
const attempts: Record<string, () => boolean> = {
  'process.send': () => typeof p.send === 'function',
  'process._send': () => typeof p._send === 'function',
  'process.channel.ref': () => typeof (p.channel as Loose | undefined)?.ref === 'function',
  'process._channel.ref': () => typeof (p._channel as Loose | undefined)?.ref === 'function',
  'the pipe handle on process': () =>
    Object.getOwnPropertySymbols(process).some((k) => {
      const v = p[k] as Loose | null | undefined;
      return !!v && typeof v === 'object' && typeof v.writeUtf8String === 'function';
    }),
  'process._getActiveHandles': () => (p._getActiveHandles as () => unknown[])().length >= 0,
  "process.on('message')": () => {
    process.on('message', () => {});
    return true;
  },
  "process.prependListener('message')": () => {
    process.prependListener('message', () => {});
    return true;
  },
};`,
    body: `  const reached: string[] = [];
  for (const [name, attempt] of Object.entries(attempts)) {
    try {
      if (attempt()) reached.push(name);
    } catch {}
  }
  if (reached.length > 0) throw new Error(\`reached the harness channel: \${reached.join(', ')}\`);
  return naive(input);`,
  },
  'network-runtime': {
    about: `tries every run-time route to the network and process modules that the bundler cannot
see: computed dynamic imports, internal bindings, getBuiltinModule, fetch/WebSocket globals,
code built from strings. Any route that works makes it throw, naming it; when every route is
refused it is a valid balancer.`,
    module: `type Loose = Record<string, unknown>;
const p = process as unknown as Loose;
const spec = (name: string): string => ['node', name].join(':');
const attempts: Record<string, () => unknown> = {
  'import(computed node:net)': () => import(spec('net')),
  'import(node:child_process)': () => import(spec('child_process')),
  'process.binding(tcp_wrap)': () => (p.binding as (n: string) => unknown)('tcp_wrap'),
  'process._linkedBinding': () => (p._linkedBinding as (n: string) => unknown)('tcp_wrap'),
  'process.getBuiltinModule(net)': () => (p.getBuiltinModule as (n: string) => unknown)('net'),
  fetch: () => (globalThis as unknown as { fetch: (u: string) => unknown }).fetch('http://127.0.0.1:9/'),
  WebSocket: () => new (globalThis as unknown as { WebSocket: new (u: string) => unknown }).WebSocket('ws://127.0.0.1:9/'),
  'eval(import)': () => (0, eval)(\`import('\${spec('net')}')\`),
  'new Function(import)': () => new Function(\`return import('\${spec('net')}')\`)(),
  'AsyncFunction(import)': () =>
    new (Object.getPrototypeOf(async () => {}).constructor as FunctionConstructor)(
      \`return await import('\${spec('net')}')\`,
    )(),
};`,
    body: `  const reached: string[] = [];
  for (const [name, attempt] of Object.entries(attempts)) {
    try {
      const value = await attempt();
      if (value !== undefined && value !== null) reached.push(name);
    } catch {}
  }
  if (reached.length > 0) throw new Error(\`reached: \${reached.join(', ')}\`);
  return naive(input);`,
  },
} satisfies Record<string, Variant>;

export type VariantName = keyof typeof VARIANTS;

/** The variant's balancer.ts; `edit` changes its hostile part (e.g. to check a test fails without it). */
export function variantSource(name: VariantName, edit: (v: Variant) => Variant = (v) => v): string {
  const v = edit(VARIANTS[name]);
  const base = readFileSync(BASE, 'utf8');
  // The base's shape is what the variants rely on: fail loudly if it changes.
  if (!base.includes(NAIVE_DOC) || !base.includes(RETURN)) throw new Error(`${BASE} lost its splice points`);
  const about = `Hostile: ${v.about}`
    .split('\n')
    .map((line) => `// ${line}\n`)
    .join('');
  const rest = base.slice(base.indexOf('\n') + 1);
  return (
    about +
    (v.imports ? `${v.imports}\n` : '') +
    // Replacer functions, so a `$` in a snippet is never read as a replacement pattern.
    rest
      .replace(NAIVE_DOC, () => (v.module ? `${v.module}\n\n${NAIVE_DOC}` : NAIVE_DOC))
      .replace(RETURN, () => `${v.body}\n}`)
  );
}

/** Writes the variant as `<root>/<name>/balancer.ts` and returns its folder. */
export function writeVariant(root: string, name: VariantName, edit?: (v: Variant) => Variant): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'balancer.ts'), variantSource(name, edit));
  return dir;
}
