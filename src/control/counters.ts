/**
 * In-memory decision counters per event family: events, allowed, blocked, errors, and the
 * distribution of decide() time (p50/p95/p99/max over a bounded ring of recent samples plus an
 * all-time max). Recording is O(1) with no allocation; percentiles are computed on read. No I/O.
 * Per-rule counters live in the policy RuleRegistry (`registry.list()[i].counters`).
 */
import type { Decision } from '../events/decision.js';
import { FAMILIES, type Family, type SecurityEvent } from '../events/types.js';

/** Latency samples kept per family for percentiles (the most recent ones). */
export const LATENCY_WINDOW = 8192;

export interface LatencySummary {
  samples: number;
  p50_ns: number;
  p95_ns: number;
  p99_ns: number;
  max_ns: number;
}

export interface FamilyStats {
  events: number;
  allowed: number;
  blocked: number;
  errors: number;
  latency: LatencySummary;
}

class FamilyCounter {
  events = 0;
  allowed = 0;
  blocked = 0;
  errors = 0;
  maxNs = 0;
  private readonly ring = new Float64Array(LATENCY_WINDOW);
  private next = 0;

  record(action: Decision['action'], evalNs: number): void {
    this.events++;
    if (action === 'allow') this.allowed++;
    else if (action === 'block') this.blocked++;
    else this.errors++;
    this.ring[this.next % LATENCY_WINDOW] = evalNs;
    this.next++;
    if (evalNs > this.maxNs) this.maxNs = evalNs;
  }

  snapshot(): FamilyStats {
    const n = Math.min(this.next, LATENCY_WINDOW);
    const sorted = this.ring.slice(0, n).sort();
    const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!);
    return {
      events: this.events,
      allowed: this.allowed,
      blocked: this.blocked,
      errors: this.errors,
      latency: {
        samples: n,
        p50_ns: at(0.5),
        p95_ns: at(0.95),
        p99_ns: at(0.99),
        max_ns: this.maxNs,
      },
    };
  }
}

export class DecisionCounters {
  private readonly families: Record<Family, FamilyCounter> = {
    http: new FamilyCounter(),
    dns: new FamilyCounter(),
    mcp: new FamilyCounter(),
    process: new FamilyCounter(),
  };

  record(event: SecurityEvent, decision: Decision): void {
    const f = this.families[event.common.family];
    (f ?? this.families.http).record(decision.action, decision.eval_ns);
  }

  snapshot(): Record<Family, FamilyStats> {
    const out = {} as Record<Family, FamilyStats>;
    for (const family of FAMILIES) out[family] = this.families[family].snapshot();
    return out;
  }

  totals(): { events: number; allowed: number; blocked: number; errors: number } {
    const t = { events: 0, allowed: 0, blocked: 0, errors: 0 };
    for (const family of FAMILIES) {
      const f = this.families[family];
      t.events += f.events;
      t.allowed += f.allowed;
      t.blocked += f.blocked;
      t.errors += f.errors;
    }
    return t;
  }
}
