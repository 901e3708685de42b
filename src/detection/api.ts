/**
 * Control-API handlers for `POST /v1/ir/backtest` and `POST /v1/ir/hunt`, as plain functions from a
 * parsed JSON body to a status + JSON payload. The control plane wraps them as routes (src/cli);
 * hunt receives its event source as an injected function, so detection never opens session.db.
 * Never throws on a bad body: answers 400 with issues. No I/O of its own.
 */
import type { SecurityEvent } from '../events/types.js';
import type { Issue } from '../errors.js';
import { DEFAULT_MAX_ROWS, MAX_ROWS_LIMIT } from './evidence.js';
import { compilePack, loadPackTexts, type LoadedPack } from './install.js';
import { corpusItem, runDetections, type CorpusItem } from './run.js';
import { checkPackSet, validatePackValue } from './validate.js';

/** Events one backtest request may carry (the body itself is also bounded by the control server). */
export const MAX_API_EVENTS = 10_000;

export interface ApiResult {
  status: number;
  json: unknown;
}

export interface HuntDeps {
  /** Events of a session (the current one when `session` is undefined); throws when unknown. */
  sessionEvents(
    session: string | undefined,
  ): Iterable<SecurityEvent> | AsyncIterable<SecurityEvent>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (issues: Issue[]): ApiResult => ({
  status: 400,
  json: { error: 'E_IR_INVALID', issues },
});

/** `pack` (YAML/JSON text or an object) or `packs` (a list of them) → loaded packs. */
function packsFrom(
  body: Obj,
): { ok: true; packs: LoadedPack[] } | { ok: false; result: ApiResult } {
  const raw =
    body.packs !== undefined ? body.packs : body.pack !== undefined ? [body.pack] : undefined;
  if (!Array.isArray(raw) || raw.length === 0)
    return {
      ok: false,
      result: bad([
        { path: 'pack', message: 'give "pack" (YAML text or object) or "packs" (a list)' },
      ]),
    };
  const texts = raw
    .filter((p): p is string => typeof p === 'string')
    .map((text, i) => ({ text, file: `packs[${i}]` }));
  const fromText = loadPackTexts(texts);
  const issues: Issue[] = fromText.ok ? [] : fromText.issues;
  const packs: LoadedPack[] = fromText.ok ? [...fromText.value] : [];
  raw.forEach((p, i) => {
    if (typeof p === 'string') return;
    const v = validatePackValue(p, { file: `packs[${i}]` });
    const c = v.ok ? compilePack(v.value) : v;
    if (c.ok) packs.push(c.value);
    else issues.push(...c.issues);
  });
  issues.push(...(fromText.ok ? checkPackSet(packs.map((p) => p.pack)) : []));
  return issues.length > 0 ? { ok: false, result: bad(issues) } : { ok: true, packs };
}

function maxRows(body: Obj): number | Issue {
  const v = body.max_rows ?? DEFAULT_MAX_ROWS;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_ROWS_LIMIT
    ? v
    : { path: 'max_rows', message: `must be an integer 0…${MAX_ROWS_LIMIT}` };
}

export async function backtestHandler(body: unknown): Promise<ApiResult> {
  if (!isObj(body))
    return bad([{ path: '', message: 'body must be a JSON object with "pack" and "events"' }]);
  const p = packsFrom(body);
  if (!p.ok) return p.result;
  const rows = maxRows(body);
  if (typeof rows !== 'number') return bad([rows]);
  if (!Array.isArray(body.events))
    return bad([
      { path: 'events', message: '"events" must be a list of events or {event, expect}' },
    ]);
  if (body.events.length > MAX_API_EVENTS)
    return bad([{ path: 'events', message: `at most ${MAX_API_EVENTS} events per request` }]);
  const items: CorpusItem[] = [];
  const issues: Issue[] = [];
  body.events.forEach((e, i) => {
    const r = corpusItem(e, `events[${i}]`, { path: `events[${i}]`, message: '' });
    if (r.ok && r.item !== null) items.push(r.item);
    else if (!r.ok) issues.push(r.issue);
  });
  if (issues.length > 0) return bad(issues);
  return { status: 200, json: await runDetections(p.packs, items, 'backtest', { maxRows: rows }) };
}

export async function huntHandler(body: unknown, deps: HuntDeps): Promise<ApiResult> {
  if (!isObj(body))
    return bad([
      { path: '', message: 'body must be a JSON object with "pack" and optional "session"' },
    ]);
  const p = packsFrom(body);
  if (!p.ok) return p.result;
  const rows = maxRows(body);
  if (typeof rows !== 'number') return bad([rows]);
  if (body.session !== undefined && typeof body.session !== 'string')
    return bad([{ path: 'session', message: 'must be a session id' }]);
  let events: Iterable<SecurityEvent> | AsyncIterable<SecurityEvent>;
  try {
    events = deps.sessionEvents(body.session as string | undefined);
  } catch (err) {
    return { status: 404, json: { error: 'E_CONFIG', message: (err as Error).message } };
  }
  async function* items(): AsyncGenerator<CorpusItem> {
    for await (const event of events) yield { event };
  }
  try {
    return { status: 200, json: await runDetections(p.packs, items(), 'hunt', { maxRows: rows }) };
  } catch (err) {
    return { status: 500, json: { error: 'E_LEDGER', message: (err as Error).message } };
  }
}
