import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_LOADS, TINY_SHAPE } from '../src/eval/cascade.js';
import { decodeBody, encodeFrame, FrameReader } from '../src/eval/framing.js';
import { MAX_MESSAGE_BYTES } from '../src/eval/protocol.js';
import { inheritableFds, processTree, sealedStdio } from '../src/eval/sandbox.js';
import { TranspileError, transpileCandidate } from '../src/eval/transpile.js';
import { buildWorkerBundle, type WorkerBundle } from '../src/eval/worker-bundle.js';
import { findExecutable } from '../src/eval/worker-launch.js';
import { checkFromWorker, WorkerDeath, WorkerProcess } from '../src/eval/worker-process.js';

/**
 * The layers under the bundler, each tested on its own: code is sent to the worker raw (as if a
 * route past the transpile-time checks existed), and the OS sandbox, Node's permission model, the
 * private channel and the sealed descriptors must still refuse. Every test here fails on the old
 * harness (fork with Node IPC, no OS sandbox).
 */
const hasBwrap = process.platform === 'linux' && findExecutable('bwrap') !== undefined;
const osLayer = hasBwrap && (process.env.ADRS_EVAL_SANDBOX ?? 'auto') !== 'none';
let bundle: WorkerBundle;
let scratch: string;
let listener: Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  bundle = await buildWorkerBundle();
  scratch = mkdtempSync(join(tmpdir(), 'adrs-layers-test-'));
  chmodSync(scratch, 0o755);
  listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
  port = (listener.address() as { port: number }).port;
}, 60_000);
afterAll(() => {
  listener?.close();
  if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs raw JavaScript (no bundler, no import policy) as a candidate: its reply to one tiny call. */
async function runRaw(js: string): Promise<{ failure?: string; worker: WorkerProcess }> {
  const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
  try {
    const loaded = await worker.request({ type: 'load', js, kernels: {} });
    if (loaded.type === 'loaded' && loaded.failure) return { failure: loaded.failure.message, worker };
    const reply = await worker.request({ type: 'call', loads: TINY_LOADS, shape: TINY_SHAPE });
    return { ...(reply.failure ? { failure: reply.failure.message } : {}), worker };
  } finally {
    worker.kill();
  }
}

/** A raw candidate that runs `body` (an async function body) and throws with what it returns. */
const reporting = (imports: string, body: string): string =>
  `${imports}\nexport default async function () { const r = await (async () => { ${body} })(); throw new Error('outcome: ' + r); }\n`;

describe('the OS sandbox (bubblewrap), past the bundler', () => {
  it.skipIf(!osLayer)('every worker runs in its own network, mount and pid namespaces', async () => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    try {
      expect(worker.sandbox).toMatchObject({ os: 'bubblewrap', network: 'none', filesystem: 'read-only' });
      const ns = (pid: number | string, kind: string) => readlinkSync(`/proc/${pid}/ns/${kind}`);
      for (const kind of ['net', 'mnt', 'pid', 'ipc', 'uts', 'user'])
        expect(ns(worker.pid!, kind), kind).not.toBe(ns('self', kind));
    } finally {
      worker.kill();
    }
  });

  it.skipIf(!osLayer)('no TCP connection reaches the host, even with node:net', async () => {
    const { failure } = await runRaw(
      reporting(
        "import net from 'node:net';",
        `return await new Promise((done) => { const s = net.connect(${port}, '127.0.0.1'); s.on('connect', () => { s.end('x'); done('connected'); }); s.on('error', (e) => done(e.code)); });`,
      ),
    );
    expect(failure).toMatch(/outcome: (ECONNREFUSED|ENETUNREACH|EACCES)/);
    expect(connections).toBe(0);
  });

  it.skipIf(!osLayer)('no abstract Unix socket of the host is reachable', async () => {
    const name = `\0adrs-layers-${process.pid}-${randomBytes(4).toString('hex')}`;
    let reached = 0;
    const server = createServer((s) => {
      reached++;
      s.destroy();
    });
    await new Promise<void>((done) => server.listen(name, done));
    try {
      const { failure } = await runRaw(
        reporting(
          "import net from 'node:net';",
          `return await new Promise((done) => { const s = net.connect(${JSON.stringify(name)}); s.on('connect', () => done('connected')); s.on('error', (e) => done(e.code)); });`,
        ),
      );
      expect(failure).toMatch(/outcome: ECONNREFUSED/);
      expect(reached).toBe(0);
    } finally {
      server.close();
    }
  });

  it.skipIf(!osLayer)('a Unix socket bound in /tmp stays in the sandbox’s private /tmp', async () => {
    const path = `/tmp/adrs-layers-${process.pid}.sock`;
    rmSync(path, { force: true });
    const { failure } = await runRaw(
      reporting(
        "import net from 'node:net';",
        `return await new Promise((done) => { const s = net.createServer(); s.on('error', (e) => done(e.code)); s.listen(${JSON.stringify(path)}, () => done('listening')); });`,
      ),
    );
    // Node's permission model does not see a bind as a file-system call: it succeeds, in private.
    expect(failure).toMatch(/outcome: listening/);
    expect(existsSync(path)).toBe(false);
  });
});

describe('Node’s permission model, past the bundler', () => {
  it('refuses writes and reads outside the worker’s own code', async () => {
    const marker = join(scratch, 'written.txt');
    const write = await runRaw(
      reporting(
        "import fs from 'node:fs';",
        `fs.writeFileSync(${JSON.stringify(marker)}, 'x'); return 'written';`,
      ),
    );
    expect(write.failure).toMatch(/Access to this API has been restricted/);
    expect(existsSync(marker)).toBe(false);
    const read = await runRaw(
      reporting("import fs from 'node:fs';", "return fs.readFileSync('/etc/hostname', 'utf8').length;"),
    );
    expect(read.failure).toMatch(/Access to this API has been restricted/);
  });
});

describe('the private channel', () => {
  it('garbage on fd 3 kills that worker with an artifact; the harness carries on', async () => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    try {
      await worker.request({
        type: 'load',
        js: "import fs from 'node:fs';\nexport default async function () { fs.writeSync(3, new Uint8Array([1, 0, 0, 0, 0xff, 0xff])); fs.writeSync(3, new Uint8Array(16).fill(0x7b)); return new Promise(() => {}); }\n",
        kernels: {},
      });
      const call = worker.request({ type: 'call', loads: TINY_LOADS, shape: TINY_SHAPE });
      await expect(call).rejects.toThrow(WorkerDeath);
      await expect(call).rejects.toThrow(/the worker broke the harness protocol and was killed/);
      expect(worker.dead?.kind).toBe('crash');
    } finally {
      worker.kill();
    }
    // The next worker is fine.
    const { failure } = await runRaw('export default async function () { throw new Error("outcome: ok"); }');
    expect(failure).toMatch(/outcome: ok/);
  });

  it('a frame declaring more than the bound is refused before it is buffered', async () => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    try {
      await worker.request({
        type: 'load',
        js: `import fs from 'node:fs';\nexport default async function () { const h = new Uint8Array(4); new DataView(h.buffer).setUint32(0, ${MAX_MESSAGE_BYTES + 1}, true); fs.writeSync(3, h); return new Promise(() => {}); }\n`,
        kernels: {},
      });
      await expect(worker.request({ type: 'call', loads: TINY_LOADS, shape: TINY_SHAPE })).rejects.toThrow(
        /over the bound of/,
      );
    } finally {
      worker.kill();
    }
  });

  it('the worker accepts code once: a second load is refused', async () => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    try {
      const first = await worker.request({
        type: 'load',
        js: 'export default async function () {}',
        kernels: {},
      });
      expect(first.type === 'loaded' && first.failure).toBeFalsy();
      const second = await worker.request({
        type: 'load',
        js: "import os from 'node:os'; export default async function () { return os.hostname(); }",
        kernels: {},
      });
      expect(second.type === 'loaded' && second.failure?.message).toBe(
        'the worker accepts candidate code once',
      );
    } finally {
      worker.kill();
    }
  });

  it('frames: typed arrays and histories round-trip; malformed input is a FrameError, never a throw', () => {
    const history = [new Float32Array([1, 2]), new Float32Array([3, 4.5])];
    const frame = encodeFrame({ type: 'call', id: 7, loads: history[1]!, history, shape: { layers: 1 } });
    const m = decodeBody(frame.subarray(4));
    expect(m.loads).toEqual(new Float32Array([3, 4.5]));
    expect(m.history).toEqual(history);
    expect(m.shape).toEqual({ layers: 1 });
    const reader = new FrameReader(1 << 20);
    const split = [frame.subarray(0, 3), frame.subarray(3, 11), frame.subarray(11)];
    const got = split.flatMap((c) => {
      const r = reader.push(c);
      return 'messages' in r ? r.messages : [];
    });
    expect(got.map((x) => x.id)).toEqual([7]);
    // Random garbage, truncated headers, prototype keys, sections past the end: an error result.
    for (let i = 0; i < 200; i++) {
      const r = new FrameReader(1 << 16).push(randomBytes(1 + (i % 64)));
      expect('error' in r || r.messages.length === 0).toBe(true);
    }
    const proto = new TextEncoder().encode('{"m":{"__proto__":{"x":1}},"b":[]}');
    const body = new Uint8Array(4 + proto.length);
    new DataView(body.buffer).setUint32(0, proto.length, true);
    body.set(proto, 4);
    expect(() => decodeBody(body)).toThrow(/not allowed/);
    expect(new FrameReader(100).push(new Uint8Array([0xff, 0xff, 0xff, 0x7f]))).toEqual({
      error: `a frame of ${0x7fffffff} bytes, over the bound of 100`,
    });
  });

  it('every field of a worker’s message is checked before the harness reads it', () => {
    expect(checkFromWorker({ type: 'result', id: 1 })).toBe('a result without a time');
    expect(checkFromWorker({ type: 'result', id: 1, ms: 1, failure: { kind: 'x', message: 'y' } })).toBe(
      'a malformed failure',
    );
    expect(checkFromWorker({ type: 'loaded', id: 'a' })).toMatch(/without an id/);
    expect(
      checkFromWorker({ type: 'result', id: 1, ms: 1, phy2log: { length: 5 }, split: { host_ms: 1 } }),
    ).toBe('a malformed time split');
    const ok = checkFromWorker({
      type: 'result',
      id: 2,
      ms: 1,
      phy2log: new Int32Array(2),
      logcnt: 'Array',
      failure: { kind: 'exception', message: 'm', diagnostics: ['a', 3] },
    });
    expect(ok).toMatchObject({ id: 2, logcnt: 'Array', failure: { diagnostics: ['a', '?'] } });
  });
});

describe('descriptors', () => {
  it('a descriptor the harness inherited without close-on-exec never reaches a worker', async () => {
    // A file only its owner may write, held open by the harness's caller (as `exec 5>>file` would).
    const secret = join(scratch, 'owner-only.log');
    writeFileSync(secret, 'before\n', { mode: 0o600 });
    const source = join(scratch, 'fd-harness.ts');
    writeFileSync(
      source,
      `import { readdirSync, readlinkSync } from 'node:fs';
import { WorkerProcess } from ${JSON.stringify(resolve('src/eval/worker-process.ts'))};
const bundle = JSON.parse(process.argv[2]);
const w = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
await w.request({ type: 'load', js: "import fs from 'node:fs'; export default async function () { let n = 0; for (let fd = 4; fd < 256; fd++) { try { fs.writeSync(fd, 'escaped\\\\n'); n++; } catch {} } throw new Error('wrote to ' + n); }", kernels: {} });
const reply = await w.request({ type: 'call', loads: new Float32Array(24), shape: { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 } });
const links = readdirSync('/proc/' + w.pid + '/fd').map((fd) => { try { return readlinkSync('/proc/' + w.pid + '/fd/' + fd); } catch { return '?'; } });
w.kill();
console.log(JSON.stringify({ failure: reply.failure?.message, links }));
process.exit(0);
`,
    );
    const harnessFile = join(scratch, 'fd-harness.mjs');
    await build({
      entryPoints: [source],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: harnessFile,
    });
    const fd = openSync(secret, 'a');
    try {
      const child = spawn(process.execPath, [harnessFile, JSON.stringify(bundle)], {
        // fd 5 of the harness: the secret file, without close-on-exec (libuv's dup2 clears it).
        stdio: ['ignore', 'pipe', 'inherit', 'ignore', 'ignore', fd],
        env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((done) => child.once('exit', done));
      expect(code).toBe(0);
      const report = JSON.parse(out.trim().split('\n').pop()!) as { failure: string; links: string[] };
      expect(report.links).not.toContain(secret);
      expect(readFileSync(secret, 'utf8')).toBe('before\n');
    } finally {
      closeSync(fd);
    }
  });

  it('sealedStdio replaces every inheritable descriptor by /dev/null', () => {
    const stdio = sealedStdio(['ignore', 'pipe', 'pipe', 'pipe']) as unknown[];
    for (const fd of inheritableFds()) if (fd > 3) expect(typeof stdio[fd]).toBe('number');
    expect(stdio.slice(0, 4)).toEqual(['ignore', 'pipe', 'pipe', 'pipe']);
  });
});

describe('the transpile runs under the candidate’s bounds, in its own process', () => {
  it('quadratic constant folding is stopped at the time limit', async () => {
    const dir = join(scratch, 'fold');
    mkdirSync(dir);
    const pieces = Array.from({ length: 40_000 }, () => '"abcdefgh"').join('+');
    writeFileSync(join(dir, 'balancer.ts'), `export default ${pieces};\n`);
    const run = transpileCandidate(dir, { timeoutS: 1, memoryMb: 1 << 20 });
    await expect(run).rejects.toThrow(TranspileError);
    await expect(run).rejects.toMatchObject({ key: 'timeout' });
  });

  it.skipIf(!osLayer)('esbuild runs in bubblewrap and sees only the candidate folder', async () => {
    const dir = join(scratch, 'outside');
    mkdirSync(dir);
    writeFileSync(join(dir, 'balancer.ts'), "import x from '/etc/hostname';\nexport default x;\n");
    await expect(transpileCandidate(dir)).rejects.toThrow(
      /imports outside the candidate folder are not allowed/,
    );
    writeFileSync(join(dir, 'balancer.ts'), 'export default async function () {}\n');
    expect((await transpileCandidate(dir)).sandbox).toBe('bubblewrap');
  });

  it('processTree lists a process and its children', () => {
    expect(processTree(process.pid)[0]).toBe(process.pid);
  });
});
