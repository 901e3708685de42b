/**
 * Prometheus exposition for `GET /metrics` (prom-client, a private registry). Every metric is
 * collected at scrape time from the in-memory counters and the rule list: nothing here touches
 * the request path or the database.
 */
import { Gauge, Registry } from 'prom-client';
import { FAMILIES } from '../events/types.js';
import type { DecisionCounters } from './counters.js';
import type { PolicyPort } from './port.js';
import type { LedgerStats } from '../store/writer.js';

export interface MetricsSources {
  counters: DecisionCounters;
  policy: PolicyPort;
  ledger: () => LedgerStats;
}

/** Builds the registry; call `registry.metrics()` per scrape. */
export function createMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  const fam = (name: string, help: string, pick: (f: ReturnType<DecisionCounters['snapshot']>['http']) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['family'],
      registers: [registry],
      collect() {
        const snap = src.counters.snapshot();
        for (const family of FAMILIES) this.set({ family }, pick(snap[family]));
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
      const snap = src.counters.snapshot();
      for (const family of FAMILIES) {
        const l = snap[family].latency;
        this.set({ family, quantile: '0.5' }, l.p50_ns / 1e9);
        this.set({ family, quantile: '0.95' }, l.p95_ns / 1e9);
        this.set({ family, quantile: '0.99' }, l.p99_ns / 1e9);
        this.set({ family, quantile: '1' }, l.max_ns / 1e9);
      }
    },
  });
  const ruleGauge = (name: string, help: string, pick: (r: ReturnType<PolicyPort['listRules']>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['rule', 'pack'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of src.policy.listRules()) this.set({ rule: r.id, pack: r.pack_id }, pick(r));
      },
    });
  ruleGauge('celgate_rule_matches_total', 'Matches per rule (carried over across plan updates).', (r) => r.counters.matches);
  ruleGauge('celgate_rule_eval_seconds_total', 'Total evaluation time per rule.', (r) => r.counters.eval_ns_total / 1e9);
  new Gauge({
    name: 'celgate_plan_generation',
    help: 'Generation of the live rule plan.',
    registers: [registry],
    collect() {
      this.set(src.policy.generation());
    },
  });
  new Gauge({
    name: 'celgate_reloads_total',
    help: 'Pack reloads by result.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      const r = src.policy.reloadStats();
      this.set({ result: 'ok' }, r.reloads);
      this.set({ result: 'refused' }, r.refused);
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
    },
  });
  return registry;
}
