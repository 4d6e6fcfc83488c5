import { unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildRunReport } from '../evolve/report.js';
import { readRunFiles } from '../evolve/report-read.js';
import { UserError } from '../util/errors.js';
import { renderPage } from './html-shell.js';
import { buildRunPageData, type RunPageData } from './run-page-data.js';

export interface Dashboard {
  url: string;
  /** Re-reads the run folder and pushes the page's data to every open page (also done on every change of events.jsonl). */
  refresh(): void;
  close(): Promise<void>;
}

/** The page data of a run folder, read afresh (read-only, as `adrs report`). */
export function runPageData(dir: string): RunPageData {
  const files = readRunFiles(dir);
  return buildRunPageData(files, buildRunReport(files, { top: 10 }));
}

/**
 * A read-only live dashboard of one run folder: `/` (the report page, following updates),
 * `/data.json` (its data) and `/events` (server-sent events, one `data` event each time
 * events.jsonl changes). Nothing else is served: no file of the folder is reachable by path.
 * Bound to 127.0.0.1 unless another host is asked for; on loopback, requests naming another Host
 * are refused, so a web page elsewhere cannot read the run through DNS rebinding.
 */
export async function serveRun(
  dir: string,
  options: { port?: number; host?: string; pollMs?: number } = {},
): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  const clients = new Set<ServerResponse>();
  let last = '';
  const snapshot = (): string => {
    try {
      return JSON.stringify(runPageData(dir));
    } catch (error) {
      return JSON.stringify({ kind: 'error', message: (error as Error).message });
    }
  };
  const push = (): void => {
    const json = snapshot();
    if (json === last) return;
    last = json;
    for (const res of clients) res.write(`event: data\ndata: ${json}\n\n`);
  };

  const server = createServer((req, res) => handle(req, res));
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const common = {
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    const port = (server.address() as AddressInfo).port;
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    if (loopback && ![`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(hostHeader)) {
      res.writeHead(403, { ...common, 'content-type': 'text/plain' }).end('forbidden host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...common, allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('read-only\n');
      return;
    }
    // Exact paths only: the query is ignored, nothing is resolved against the file system.
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/' || path === '/index.html') {
      const json = snapshot();
      last = json;
      const data = JSON.parse(json) as RunPageData;
      res
        .writeHead(200, { ...common, 'content-type': 'text/html; charset=utf-8' })
        .end(renderPage({ title: data.title ?? 'adrs report', page: 'run-page', data, live: true }));
    } else if (path === '/data.json') {
      res.writeHead(200, { ...common, 'content-type': 'application/json' }).end(snapshot());
    } else if (path === '/events') {
      res.writeHead(200, { ...common, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write(': connected\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else {
      res.writeHead(404, { ...common, 'content-type': 'text/plain' }).end('not found\n');
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new UserError(`port ${options.port} is in use; pick another with --serve PORT`)
          : error,
      ),
    );
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const eventsPath = join(dir, 'events.jsonl');
  // Polling the file's stat works on every file system (fs.watch misses changes on some).
  watchFile(eventsPath, { interval: options.pollMs ?? 500 }, () => push());
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    refresh: push,
    close: async () => {
      unwatchFile(eventsPath);
      for (const res of clients) res.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
