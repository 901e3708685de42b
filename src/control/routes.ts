/**
 * The standard admin API routes (DESIGN §9): health, rules CRUD + validate, evaluate, reload, stats,
 * recent events and /metrics. Each handler reads injected sources; live evaluations go through the
 * same decider and sink as transport traffic. Other areas add routes by passing more `Route`s to
 * the Router in start.ts.
 */
import type { EventSink } from '../events/sink.js';
import { eventFromJson } from '../events/build.js';
import type { DecisionCounters } from './counters.js';
import type { Metrics } from './metrics.js';
import type { PolicyPort } from './port.js';
import { HttpError, type Route } from './server.js';
import { MAX_LIST_LIMIT, recentEvents, ruleSummaries, type EventRow } from '../store/readers.js';
import type { Db } from '../store/schema.js';
import type { LedgerStats } from '../store/writer.js';
import { EVENT_TYPES } from '../events/types.js';
import { reportData, type ReportData } from '../store/report-data.js';
import { reportHtml } from './report-page.js';

export interface CoreRouteDeps {
  session: {
    session_id: string;
    session_dir: string;
    session_db: string;
    profile: string;
    started_ms: number;
  };
  policy: PolicyPort;
  counters: DecisionCounters;
  sink: EventSink;
  ledger: () => LedgerStats;
  /** Makes queued rows visible to readers (the writer's flush). */
  flushLedger: () => void;
  /** A read-only connection to this session's ledger. */
  readDb: () => Db;
  listeners: () => Record<string, string>;
  metrics: Metrics;
  /** More fields for /v1/health from parts the gateway composes (e.g. `fleet`). */
  health?: () => Record<string, unknown>;
  /** The live report's data, computed off the event loop (live-report.ts); without it, in-thread. */
  report?: () => Promise<ReportData>;
  /** Why the gateway refuses new requests right now (the ledger cannot record), or null. */
  notReady?: () => string | null;
}

function ruleId(params: Record<string, string>): string {
  const id = params.id ?? '';
  if (id === '') throw new HttpError(400, 'E_RULE_INVALID', 'a rule id is required');
  return id;
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new HttpError(400, 'E_CONFIG', `${name} must be a positive integer`);
  return Math.min(n, MAX_LIST_LIMIT);
}

export function coreRoutes(d: CoreRouteDeps): Route[] {
  const liveData = (): Promise<ReportData> =>
    d.report !== undefined ? d.report() : Promise.resolve(reportData(d.readDb()));
  return [
    {
      method: 'GET',
      path: '/v1/health',
      handler: () => {
        const why = d.notReady?.() ?? null;
        return {
          ...(why === null ? {} : { status: 503 }),
          json: {
            status: why === null ? 'ok' : 'not_ready',
            ready: why === null,
            ...(why === null ? {} : { reason: why }),
            session_id: d.session.session_id,
            session_dir: d.session.session_dir,
            session_db: d.session.session_db,
            profile: d.session.profile,
            generation: d.policy.generation(),
            rules: d.policy.listRules().length,
            uptime_ms: Date.now() - d.session.started_ms,
            pid: process.pid,
            listeners: d.listeners(),
            ...d.health?.(),
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/ui',
      handler: async () => {
        d.flushLedger();
        return {
          text: reportHtml(await liveData(), '/ui/data.json'),
          contentType: 'text/html; charset=utf-8',
        };
      },
    },
    {
      method: 'GET',
      path: '/ui/data.json',
      handler: async () => {
        d.flushLedger();
        return { json: await liveData() };
      },
    },
    {
      method: 'GET',
      path: '/v1/rules',
      handler: () => ({
        json: {
          generation: d.policy.generation(),
          default_action: d.policy.defaultAction(),
          rules: d.policy.listRules(),
        },
      }),
    },
    {
      method: 'GET',
      path: '/v1/rules/:id',
      handler: (r) => {
        const rule = d.policy.getRule(ruleId(r.params));
        if (rule === undefined)
          throw new HttpError(404, 'E_RULE_NOT_FOUND', `no rule "${r.params.id}"`);
        return { json: rule };
      },
    },
    {
      method: 'PUT',
      path: '/v1/rules/:id',
      handler: (r) => {
        const id = ruleId(r.params);
        if (r.body === undefined)
          throw new HttpError(400, 'E_RULE_INVALID', 'PUT /v1/rules/:id needs a JSON rule body');
        const existed = d.policy.getRule(id) !== undefined;
        const out = d.policy.putRule(id, r.body);
        if (!out.ok)
          throw new HttpError(
            400,
            'E_RULE_INVALID',
            `rule "${id}" was refused; the running plan is unchanged`,
            out.issues,
          );
        return {
          status: existed ? 200 : 201,
          json: { generation: d.policy.generation(), rule: out.value },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/rules',
      handler: (r) => {
        const body = r.body as { rules?: unknown } | undefined;
        if (body === undefined || body === null || !Array.isArray(body.rules))
          throw new HttpError(400, 'E_RULE_INVALID', 'POST /v1/rules takes {"rules": [rule, …]}');
        const out = d.policy.putRules(body.rules);
        if (!out.ok)
          throw new HttpError(
            400,
            'E_RULE_INVALID',
            `${out.issues.length} problem${out.issues.length === 1 ? '' : 's'}; no rule was installed and the running plan is unchanged`,
            out.issues,
          );
        return { json: { generation: d.policy.generation(), rules: out.value } };
      },
    },
    {
      method: 'PATCH',
      path: '/v1/rules/:id',
      handler: (r) => {
        const id = ruleId(r.params);
        const body = r.body as { enabled?: unknown } | undefined;
        const keys = body !== null && typeof body === 'object' ? Object.keys(body) : [];
        if (typeof body?.enabled !== 'boolean' || keys.length !== 1) {
          throw new HttpError(
            400,
            'E_RULE_INVALID',
            'PATCH /v1/rules/:id takes {"enabled": true|false}; use PUT to change a rule',
          );
        }
        const rule = d.policy.setEnabled(id, body.enabled);
        if (rule === undefined) throw new HttpError(404, 'E_RULE_NOT_FOUND', `no rule "${id}"`);
        return { json: { generation: d.policy.generation(), rule } };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/rules/:id',
      handler: (r) => {
        const id = ruleId(r.params);
        if (!d.policy.deleteRule(id))
          throw new HttpError(404, 'E_RULE_NOT_FOUND', `no rule "${id}"`);
        return { json: { deleted: id, generation: d.policy.generation() } };
      },
    },
    {
      method: 'POST',
      path: '/v1/rules/validate',
      handler: (r) => {
        if (r.body === undefined)
          throw new HttpError(
            400,
            'E_RULE_INVALID',
            'send a rule, a list of rules or a pack as JSON',
          );
        const out = d.policy.validate(r.body);
        return out.ok
          ? { json: { ok: true, rules: out.value.rules } }
          : { status: 422, json: { ok: false, issues: out.issues } };
      },
    },
    {
      method: 'POST',
      path: '/v1/evaluate',
      handler: (r) => {
        const body = r.body as { event?: unknown; pack?: unknown; record?: unknown } | undefined;
        if (
          body === undefined ||
          typeof body !== 'object' ||
          body === null ||
          Array.isArray(body) ||
          body.event === undefined
        ) {
          throw new HttpError(
            400,
            'E_PARSE',
            'body must be {"event": {...}, "pack"?: {...}, "record"?: boolean}',
          );
        }
        const ev = eventFromJson(body.event, {
          session_id: d.session.session_id,
          profile_id: d.session.profile,
        });
        if (!ev.ok) throw new HttpError(400, 'E_PARSE', 'the event is invalid', ev.issues);
        if (body.pack !== undefined) {
          const out = d.policy.evaluateWithPack(body.pack, ev.value);
          if (!out.ok)
            throw new HttpError(400, 'E_RULE_INVALID', 'the supplied pack is invalid', out.issues);
          return {
            json: { event_id: ev.value.common.event_id, recorded: false, decision: out.value },
          };
        }
        const decision = d.policy.decider.decide(ev.value);
        const record = body.record !== false;
        if (record) d.sink.decision(ev.value, decision);
        return { json: { event_id: ev.value.common.event_id, recorded: record, decision } };
      },
    },
    {
      method: 'POST',
      path: '/v1/reload',
      handler: () => {
        const out = d.policy.reload('api');
        if (!out.ok)
          throw new HttpError(
            422,
            'E_RULE_INVALID',
            'reload refused; the running plan is unchanged',
            out.issues,
          );
        return { json: out.value };
      },
    },
    {
      method: 'GET',
      path: '/v1/stats',
      handler: () => ({
        json: {
          session_id: d.session.session_id,
          generation: d.policy.generation(),
          totals: d.counters.totals(),
          families: d.counters.snapshot(),
          rules: d.policy.listRules().map((r) => ({
            id: r.id,
            pack_id: r.pack_id,
            mode: r.mode,
            enabled: r.enabled,
            ...r.counters,
          })),
          ledger: d.ledger(),
          reload: d.policy.reloadStats(),
        },
      }),
    },
    {
      method: 'GET',
      path: '/v1/events',
      handler: (r) => {
        d.flushLedger();
        const query: { limit?: number; rule?: string; event_type?: string; decision?: string } = {};
        const limit = intParam(r.query, 'limit');
        if (limit !== undefined) query.limit = limit;
        for (const key of ['rule', 'event_type', 'decision'] as const) {
          const v = r.query.get(key);
          if (v !== null) query[key] = v;
        }
        // An unknown filter value is an error, not an empty list that looks like "nothing happened".
        if (query.decision !== undefined && !['allow', 'block', 'error'].includes(query.decision)) {
          throw new HttpError(
            400,
            'E_BAD_REQUEST',
            `decision must be allow, block or error (got "${query.decision}")`,
          );
        }
        if (
          query.event_type !== undefined &&
          !(EVENT_TYPES as readonly string[]).includes(query.event_type)
        ) {
          throw new HttpError(
            400,
            'E_BAD_REQUEST',
            `event_type must be one of ${EVENT_TYPES.join(', ')} (got "${query.event_type}")`,
          );
        }
        const events: EventRow[] = recentEvents(d.readDb(), query);
        return { json: { events } };
      },
    },
    {
      method: 'GET',
      path: '/v1/rules-summary',
      handler: () => {
        d.flushLedger();
        return { json: { rules: ruleSummaries(d.readDb()) } };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: async () => ({ text: await d.metrics.scrape(), contentType: d.metrics.contentType }),
    },
  ];
}
