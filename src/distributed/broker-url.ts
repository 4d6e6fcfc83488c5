import type { RedisOptions } from 'bullmq';
import { UserError } from '../util/errors.js';

/** Where the broker URL comes from when no flag or config names one (keeps the password off the command line). */
export const BROKER_URL_ENV = 'ADRS_BROKER_URL';

/** A broker address, parsed once; `display` is safe to print (no password), `url` never is. */
export interface BrokerAddress {
  readonly url: string;
  readonly display: string;
  readonly password: string | null;
  readonly connection: RedisOptions;
}

/**
 * The broker URL from the flag, else the config, else $ADRS_BROKER_URL. A recorded URL whose password
 * was redacted (`***`) takes the password from the environment's URL of the same host.
 */
export function resolveBrokerUrl(
  flag: string | undefined,
  configured: string | null | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  const fromEnv = env[BROKER_URL_ENV] || undefined;
  const chosen = flag ?? configured ?? fromEnv ?? null;
  if (chosen === null || !chosen.includes(REDACTED)) return chosen;
  if (fromEnv && !fromEnv.includes(REDACTED) && sameServer(fromEnv, chosen)) return fromEnv;
  throw new UserError(
    `the broker URL ${chosen} has its password redacted (run folders never hold it); give --broker redis://:PASSWORD@HOST:PORT or set ${BROKER_URL_ENV}`,
  );
}

export const REDACTED = '***';

/** Parses redis://[user[:password]@]host[:port][/db] or rediss:// (TLS); anything else is a one-line error. */
export function parseBrokerUrl(url: string): BrokerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(
      `broker URL '${redactUrl(url)}' cannot be read; write redis://HOST:PORT, redis://:PASSWORD@HOST:PORT or rediss://… for TLS`,
    );
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new UserError(
      `broker URL '${redactUrl(url)}' must start with redis:// or rediss:// (TLS), got ${u.protocol}//`,
    );
  }
  if (!u.hostname) throw new UserError(`broker URL '${redactUrl(url)}' names no host`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new UserError(`broker URL '${redactUrl(url)}': the database after the host must be a number`);
  const password = u.password ? decodeURIComponent(u.password) : null;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const connection: RedisOptions = {
    host,
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(password !== null ? { password } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
    // BullMQ's workers block on the connection; it requires retries without a per-request cap.
    maxRetriesPerRequest: null,
  };
  return { url, display: redactUrl(url), password, connection };
}

/** The URL with its password replaced by *** (user names stay: they are not secrets). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, (_m, scheme: string, auth: string) => {
    const colon = auth.indexOf(':');
    if (colon < 0) return `${scheme}${auth}@`;
    return `${scheme}${auth.slice(0, colon)}:${REDACTED}@`;
  });
}

/** A message with every occurrence of the URL's password (raw or URL-encoded) replaced by ***. */
export function redactText(text: string, address: Pick<BrokerAddress, 'password' | 'url'> | null): string {
  if (!address) return text;
  let out = text.split(address.url).join(redactUrl(address.url));
  const p = address.password;
  if (p) {
    for (const form of new Set([p, encodeURIComponent(p)])) out = out.split(form).join(REDACTED);
  }
  return out;
}

function sameServer(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b.replace(REDACTED, 'x'));
    return x.protocol === y.protocol && x.host === y.host && x.pathname === y.pathname;
  } catch {
    return false;
  }
}
