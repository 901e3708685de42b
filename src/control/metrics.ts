/**
 * Prometheus exposition for `GET /metrics` (prom-client, a private registry). Every metric is
 * collected at scrape time from the in-memory counters and the rule list: nothing here touches
 * the request path or the database.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { FAMILIES } from '../events/types.js';
import type { DecisionCounters } from './counters.js';
import type { PolicyPort } from './port.js';
import type { LedgerStats } from '../store/writer.js';
import type { RuleInfo } from '../policy/types.js';
import type { ApprovalCounts } from './approvals.js';

export interface MetricsSources {
  counters: DecisionCounters;
  policy: PolicyPort;
  ledger: () => LedgerStats;
  /** Ledger failures seen by the enforcement path: appends refused, and events refused (or let
   * through with on_failure: fail_open) while the ledger could not record. */
  ledgerFailures?: () => { append_errors: number; refused_events: number };
  /** Held `ask` decisions by outcome, and how many wait now (src/control/approvals.ts). */
  approvals?: () => ApprovalCounts & { pending: number };
}

/** Label value escaping of the Prometheus text format. */
function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/**
 * The per-rule series (one per installed rule, so thousands of them) are rendered directly in the
 * text format: prom-client's labelled set/hash/format path costs ~10 µs a series, which is most of a
 * 1,000-rule scrape. Same exposition format as prom-client's counters.
 */
export function renderRuleSeries(rules: readonly RuleInfo[]): string {
  const matches: string[] = [
    '# HELP celgate_rule_matches_total Matches per rule (carried over across plan updates).',
    '# TYPE celgate_rule_matches_total counter',
  ];
  const evalSeconds: string[] = [
    '# HELP celgate_rule_eval_seconds_total Total evaluation time per rule.',
    '# TYPE celgate_rule_eval_seconds_total counter',
  ];
  for (const r of rules) {
    const labels = `{rule="${esc(r.id)}",pack="${esc(r.pack_id)}"}`;
    matches.push(`celgate_rule_matches_total${labels} ${r.counters.matches}`);
    evalSeconds.push(`celgate_rule_eval_seconds_total${labels} ${r.counters.eval_ns_total / 1e9}`);
  }
  return `\n${matches.join('\n')}\n\n${evalSeconds.join('\n')}\n`;
}

export interface Metrics {
  registry: Registry;
  contentType: string;
  /** Renders the exposition; the counters and the rule list are read once per scrape. */
  scrape(): Promise<string>;
}

/** Builds the registry. Use `scrape()` (one consistent read of every source) rather than
 * `registry.metrics()`. */
export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry();
  let frame: {
    families: ReturnType<DecisionCounters['snapshot']>;
    rules: ReturnType<PolicyPort['listRules']>;
  } | null = null;
  const current = () =>
    frame ?? { families: src.counters.snapshot(), rules: src.policy.listRules() };
  const fam = (
    name: string,
    help: string,
    pick: (f: ReturnType<DecisionCounters['snapshot']>['http']) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['family'],
      registers: [registry],
      // Counters mirror monotonic in-memory totals: reset, then add the current total.
      collect() {
        const snap = current().families;
        this.reset();
        for (const family of FAMILIES) this.inc({ family }, pick(snap[family]));
      },
    });
  fam('celgate_events_total', 'Evaluated events per family.', (f) => f.events);
  fam('celgate_allowed_total', 'Allowed events per family.', (f) => f.allowed);
  fam('celgate_blocked_total', 'Blocked events per family.', (f) => f.blocked);
  fam('celgate_eval_errors_total', 'Events that failed closed per family.', (f) => f.errors);
  new Gauge({
    name: 'celgate_decide_seconds',
    help: 'decide() time quantiles over recent events, per family.',
    labelNames: ['family', 'quantile'],
    registers: [registry],
    collect() {
      const snap = current().families;
      for (const family of FAMILIES) {
        const l = snap[family].latency;
        this.set({ family, quantile: '0.5' }, l.p50_ns / 1e9);
        this.set({ family, quantile: '0.95' }, l.p95_ns / 1e9);
        this.set({ family, quantile: '0.99' }, l.p99_ns / 1e9);
        this.set({ family, quantile: '1' }, l.max_ns / 1e9);
      }
    },
  });
  new Gauge({
    name: 'celgate_plan_generation',
    help: 'Generation of the live rule plan.',
    registers: [registry],
    collect() {
      this.set(src.policy.generation());
    },
  });
  new Counter({
    name: 'celgate_reloads_total',
    help: 'Pack reloads by result.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const r = src.policy.reloadStats();
      this.reset();
      this.inc({ result: 'ok' }, r.reloads);
      this.inc({ result: 'refused' }, r.refused);
    },
  });
  new Gauge({
    name: 'celgate_ledger_rows',
    help: 'Ledger rows by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const l = src.ledger();
      this.set({ state: 'written' }, l.written);
      this.set({ state: 'queued' }, l.queued);
      this.set({ state: 'failed_batches' }, l.failed_batches);
      this.set({ state: 'rejected' }, l.rejected_rows);
    },
  });
  new Gauge({
    name: 'celgate_ledger_failures_total',
    help: 'Ledger failures on the enforcement path, by kind (append_error, refused_event).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const f = src.ledgerFailures?.() ?? { append_errors: 0, refused_events: 0 };
      this.set({ kind: 'append_error' }, f.append_errors);
      this.set({ kind: 'refused_event' }, f.refused_events);
    },
  });
  if (src.approvals !== undefined) {
    const approvals = src.approvals;
    new Counter({
      name: 'celgate_approvals_total',
      help: 'Requests an ask rule decided, by outcome: asked (held), allowed, denied, timed_out, overflow (max_pending reached), no_approver.',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        const a = approvals();
        this.reset();
        this.inc({ outcome: 'asked' }, a.asked);
        this.inc({ outcome: 'allowed' }, a.allowed);
        this.inc({ outcome: 'denied' }, a.denied);
        this.inc({ outcome: 'timed_out' }, a.timed_out);
        this.inc({ outcome: 'overflow' }, a.overflow);
        this.inc({ outcome: 'no_approver' }, a.no_approver);
      },
    });
    new Gauge({
      name: 'celgate_approvals_pending',
      help: 'Requests held for an approver now.',
      registers: [registry],
      collect() {
        this.set(approvals().pending);
      },
    });
  }
  return {
    registry,
    contentType: registry.contentType,
    async scrape() {
      frame = { families: src.counters.snapshot(), rules: src.policy.listRules() };
      try {
        return (await registry.metrics()) + renderRuleSeries(frame.rules);
      } finally {
        frame = null;
      }
    },
  };
}
