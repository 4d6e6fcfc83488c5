import { UserError } from '../../util/errors.js';
import { isRecord } from '../../util/guards.js';
import { RUN_LOG_VERSION, type RunEvent } from './events.js';
import { migrateV1 } from './migrate-v1.js';
import { toEvent } from './validate.js';

/** How events.jsonl ended: cleanly, with a torn final line (a killed run), or with a last line that is not JSON. */
export interface EventsTail {
  lines: number;
  /** Bytes after the last newline: a line a kill cut short. Ignored by --resume, --replay and the report. */
  tornBytes: number;
  /** A complete line that is not JSON (1-based), and how many lines follow it (readRunLog refuses any). */
  badLine: { line: number; ignoredAfter: number } | null;
  /** Bytes up to the end of the last event read: where a repair cuts the file. */
  cleanBytes: number;
}

/**
 * The lines of events.jsonl as JSON: every complete line up to the first that is not JSON, plus
 * how the file ended, so a reader can say what it ignored. A kill leaves at most a torn last line,
 * which --resume cuts off; what the lines say is judged by readRunLog.
 */
export function parseEvents(text: string): { events: unknown[]; tail: EventsTail } {
  const events: unknown[] = [];
  let pos = 0;
  let line = 0;
  let clean = 0;
  let badLine: EventsTail['badLine'] = null;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    line++;
    if (!badLine) {
      try {
        events.push(JSON.parse(text.slice(pos, nl)));
        clean = nl + 1;
      } catch {
        badLine = { line, ignoredAfter: 0 };
      }
    } else badLine.ignoredAfter++;
    pos = nl + 1;
  }
  return {
    events,
    tail: {
      lines: line,
      tornBytes: Buffer.byteLength(text.slice(pos)),
      badLine,
      cleanBytes: Buffer.byteLength(text.slice(0, clean)),
    },
  };
}

export interface RunLog {
  events: RunEvent[];
  tail: EventsTail;
  /** Prompt and answer texts a version-1 log held inline, by sha256 (see BlobStore.learn). */
  texts: Map<string, string>;
}

/**
 * The one reading of events.jsonl, shared by --resume, --replay and the report: its JSON lines
 * (parseEvents), each migrated to the current version when older and checked. It fails closed: a
 * line that is JSON but not a valid event stops the reader with "FILE:LINE: problem", since
 * resuming, replaying or reporting past it would act on a log it does not understand.
 */
export function readRunLog(text: string, file: string): RunLog {
  const { events: raw, tail } = parseEvents(text);
  // A kill leaves at most a torn last line (each event is one append ending in its newline), so
  // complete lines after one that is not JSON mean damage of another kind: ignoring them would
  // hide events, and --resume's repair would cut them off the file for good.
  if (tail.badLine && tail.badLine.ignoredAfter > 0)
    throw new UserError(
      `${file}:${tail.badLine.line}: the line is not JSON, yet ${tail.badLine.ignoredAfter} line(s) follow it (a kill only tears the last line); repair or remove that line`,
    );
  const texts = new Map<string, string>();
  const events = raw.map((r, i) => {
    const fail = (problem: string): never => {
      throw new UserError(`${file}:${i + 1}: ${problem}`);
    };
    if (!isRecord(r)) return fail('the line is not an event object');
    const v = r.v;
    let e: Record<string, unknown> | string = r;
    const migrated = v === undefined || v === 1;
    if (v === undefined) e = migrateV1(r, texts);
    else if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      return fail(`v is ${JSON.stringify(v)}, not a run-log version`);
    else if (v > RUN_LOG_VERSION)
      return fail(
        `written by a newer adrs (run-log version ${v}; this one reads up to ${RUN_LOG_VERSION}); use that adrs, or a newer one, on this run folder`,
      );
    else if (v === 1) e = migrateV1({ ...r, v: undefined }, texts);
    if (typeof e === 'string') return fail(e);
    const event = toEvent(e, migrated);
    return typeof event === 'string' ? fail(event) : event;
  });
  return { events, tail, texts };
}
