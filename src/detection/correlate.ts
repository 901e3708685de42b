/**
 * Correlations over the stream of findings (Sigma correlation rules): event_count, value_count,
 * temporal and temporal_ordered, per group of `group_by` values, within a sliding `timespan`.
 * One engine serves the live gateway (CorrelatingSink) and backtest / hunt (run.ts), so both give
 * the same findings for the same events in the same order. Memory is bounded: a group keeps at most
 * as many entries as its condition needs, groups whose window has passed are dropped, and beyond
 * `maxGroups` open groups the least recently fed one is evicted (counted). Time is the events'
 * `common.timestamp_ms`, never the clock. Pure; no I/O.
 */
import type { CorrelationFacts, Finding } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';
import type { IrCorrelation, IrPack } from './types.js';

/** Default bound on open groups across all correlations of an engine. */
export const DEFAULT_MAX_GROUPS = 10_000;
/** Contributing event ids carried on one correlation finding. */
export const MAX_FINDING_EVENT_IDS = 100;

export type CorrelationFinding = Finding & { correlation: CorrelationFacts };

export interface CorrelationStats {
  open_groups: number;
  /** Groups dropped at the open-group limit while their window was still open. */
  evictions: number;
  /** Groups dropped because their window had passed. */
  expired: number;
  /** Correlation findings produced. */
  fired: number;
}

interface Entry {
  ts: number;
  id: string;
}

interface Group {
  key: string;
  c: Compiled;
  values: string[];
  /** Newest contribution time (for expiry). */
  newest: number;
  /** event_count: contributions, oldest first. */
  events: Entry[];
  /** value_count: value → newest contribution; temporal: rule index (as string) → newest. */
  latest: Map<string, Entry>;
  /** temporal_ordered: chain[k] = the latest-starting chain that ends with rule k. */
  chain: ({ start: number; ids: string[] } | null)[];
}

interface Compiled {
  spec: IrCorrelation;
  packId: string;
  /** Position in evaluation order (a correlation after every correlation it references). */
  order: number;
  /** Rule or correlation id → its position in `spec.rules`. */
  refIndex: Map<string, number>;
  groupBy: ((e: SecurityEvent) => string)[];
  field: ((e: SecurityEvent) => string) | null;
  needed: number;
  exact: boolean;
  /** Specs are compared by this text to keep state across a reload. */
  signature: string;
}

/** Reads a contract path off an event ('' when absent); numbers and booleans as their text. */
function getter(path: string): (e: SecurityEvent) => string {
  const parts = path.split('.');
  return (e) => {
    let o: unknown = e;
    for (const p of parts) {
      if (typeof o !== 'object' || o === null) return '';
      o = (o as Record<string, unknown>)[p];
    }
    return typeof o === 'string'
      ? o
      : typeof o === 'number' || typeof o === 'boolean'
        ? String(o)
        : '';
  };
}

function compile(spec: IrCorrelation, packId: string): Omit<Compiled, 'order'> {
  const { op, count } = spec.condition;
  return {
    spec,
    packId,
    refIndex: new Map(spec.rules.map((r, i) => [r, i])),
    groupBy: spec.group_by.map(getter),
    field: spec.field === null ? null : getter(spec.field),
    needed: op === 'gt' ? count + 1 : count,
    exact: op === 'eq',
    signature: JSON.stringify({ packId, ...spec, source: undefined, line: undefined }),
  };
}

export class CorrelationEngine {
  #compiled: Compiled[] = [];
  /** Referenced id → correlations fed by it. */
  #byRef = new Map<string, Compiled[]>();
  /** Rules whose findings only feed correlations (`generate: false`). */
  #silent = new Set<string>();
  /** Open groups, least recently fed first. */
  readonly #groups = new Map<string, Group>();
  #evictions = 0;
  #expired = 0;
  #findings = 0;

  constructor(
    packs: readonly Pick<IrPack, 'id' | 'correlations' | 'rules'>[] = [],
    readonly maxGroups: number = DEFAULT_MAX_GROUPS,
  ) {
    this.replace(packs);
  }

  get size(): number {
    return this.#compiled.length;
  }

  /**
   * Installs a new set of correlations (a reload). Open groups of correlations whose spec did not
   * change are kept; the others are dropped.
   */
  replace(packs: readonly Pick<IrPack, 'id' | 'correlations' | 'rules'>[]): void {
    this.#silent = new Set(
      packs.flatMap((p) => p.rules.filter((r) => r.generate === false).map((r) => r.id)),
    );
    const all = packs.flatMap((p) => p.correlations.map((c) => compile(c, p.id)));
    // Evaluation order: a correlation after those it references (validation rules out cycles).
    const byId = new Map(all.map((c) => [c.spec.id, c]));
    const ordered: Compiled[] = [];
    const placed = new Set<string>();
    const place = (c: Omit<Compiled, 'order'>) => {
      if (placed.has(c.spec.id)) return;
      placed.add(c.spec.id);
      for (const r of c.spec.rules) {
        const dep = byId.get(r);
        if (dep !== undefined) place(dep);
      }
      ordered.push({ ...c, order: ordered.length });
    };
    for (const c of all) place(c);
    const next = new Map(ordered.map((c) => [c.signature, c]));
    for (const [key, g] of this.#groups) {
      const n = next.get(g.c.signature);
      if (n === undefined) this.#groups.delete(key);
      else g.c = n;
    }
    this.#compiled = ordered;
    this.#byRef = new Map();
    for (const c of ordered)
      for (const r of c.spec.rules) {
        let list = this.#byRef.get(r);
        if (list === undefined) this.#byRef.set(r, (list = []));
        list.push(c);
      }
  }

  /** The findings to record and report: all but those of `generate: false` rules. */
  published<F extends Finding>(findings: readonly F[]): readonly F[] {
    if (this.#silent.size === 0 || findings.length === 0) return findings;
    return findings.some((f) => this.#silent.has(f.rule_id))
      ? findings.filter((f) => !this.#silent.has(f.rule_id))
      : findings;
  }

  stats(): CorrelationStats {
    return {
      open_groups: this.#groups.size,
      evictions: this.#evictions,
      expired: this.#expired,
      fired: this.#findings,
    };
  }

  /**
   * Feeds one event and the findings the rules produced on it; returns the correlation findings
   * it completes (attached to this event). Events are taken in the order given.
   */
  observe(event: SecurityEvent, findings: readonly Finding[]): CorrelationFinding[] {
    if (findings.length === 0 || this.#byRef.size === 0) return [];
    let touched: Compiled[] | undefined;
    const fired = new Set<string>();
    for (const f of findings) {
      fired.add(f.rule_id);
      const list = this.#byRef.get(f.rule_id);
      if (list !== undefined) (touched ??= []).push(...list);
    }
    if (touched === undefined) return [];
    const out: CorrelationFinding[] = [];
    const done = new Set<Compiled>();
    while (touched.length > 0) {
      // Lowest evaluation order first, so a chained correlation sees what fired before it.
      let at = 0;
      for (let i = 1; i < touched.length; i++) if (touched[i]!.order < touched[at]!.order) at = i;
      const c = touched.splice(at, 1)[0]!;
      if (done.has(c)) continue;
      done.add(c);
      const f = this.#feed(c, event, fired);
      if (f === null) continue;
      out.push(f);
      fired.add(c.spec.id);
      const next = this.#byRef.get(c.spec.id);
      if (next !== undefined) touched.push(...next);
    }
    return out;
  }

  #feed(c: Compiled, event: SecurityEvent, fired: ReadonlySet<string>): CorrelationFinding | null {
    const spec = c.spec;
    const ts = event.common.timestamp_ms;
    const id = event.common.event_id;
    let value = '';
    if (c.field !== null) {
      value = c.field(event);
      // An event without the counted value contributes nothing to a value_count.
      if (value === '') return null;
    }
    const values = c.groupBy.map((g) => g(event));
    const key = `${spec.id}\u0000${values.join('\u0000')}`;
    const g = this.#group(key, c, values, ts);
    const horizon = ts - spec.timespan_ms;
    g.newest = Math.max(g.newest, ts);
    let count: number;
    let ids: string[];
    switch (spec.type) {
      case 'event_count': {
        const ev = g.events;
        let drop = 0;
        while (drop < ev.length && ev[drop]!.ts <= horizon) drop++;
        if (drop > 0) ev.splice(0, drop);
        ev.push({ ts, id });
        // Only the newest `needed` entries can matter for a lower bound.
        if (ev.length > c.needed) ev.splice(0, ev.length - c.needed);
        count = ev.length;
        ids = ev.map((e) => e.id);
        break;
      }
      case 'value_count': {
        const m = g.latest;
        for (const [v, e] of m) {
          if (e.ts > horizon) break;
          m.delete(v);
        }
        m.delete(value);
        m.set(value, { ts, id });
        if (m.size > c.needed) m.delete(m.keys().next().value!);
        count = m.size;
        ids = [...m.values()].map((e) => e.id);
        break;
      }
      case 'temporal': {
        const m = g.latest;
        for (const [k, e] of m) if (e.ts <= horizon) m.delete(k);
        for (const r of spec.rules) {
          if (!fired.has(r)) continue;
          const k = String(c.refIndex.get(r));
          m.delete(k);
          m.set(k, { ts, id });
        }
        count = m.size;
        ids = [...new Set([...m.values()].sort((a, b) => a.ts - b.ts).map((e) => e.id))];
        break;
      }
      case 'temporal_ordered': {
        const chain = g.chain;
        const last = spec.rules.length - 1;
        // Later steps first, so one event does not fill two steps of the same chain.
        for (let k = last; k >= 0; k--) {
          if (!fired.has(spec.rules[k]!)) continue;
          if (k === 0) chain[0] = { start: ts, ids: [id] };
          else {
            const prev = chain[k - 1];
            if (prev === null || prev === undefined || prev.start <= horizon) continue;
            const cur = chain[k];
            // Keep the chain that started latest: it stays inside the window longest.
            if (cur === null || cur === undefined || prev.start >= cur.start)
              chain[k] = { start: prev.start, ids: [...prev.ids, id] };
          }
        }
        const done = chain[last];
        count = done !== null && done !== undefined && done.start > horizon ? last + 1 : 0;
        ids = count > 0 ? done!.ids : [];
        break;
      }
    }
    const holds = c.exact ? count === c.needed : count >= c.needed;
    if (!holds) return null;
    // Fired: the group starts over, so the next finding needs a fresh set of contributions.
    this.#groups.delete(key);
    this.#findings++;
    const group: Record<string, string> = {};
    spec.group_by.forEach((f, i) => (group[f] = values[i]!));
    return {
      event_id: id,
      rule_id: spec.id,
      pack_id: c.packId,
      severity: spec.severity,
      confidence: spec.confidence,
      title: spec.title,
      tags: spec.tags,
      matched_fields: spec.field === null ? spec.group_by : [...spec.group_by, spec.field],
      correlation: {
        type: spec.type,
        group,
        count,
        timespan_ms: spec.timespan_ms,
        event_ids: ids.slice(-MAX_FINDING_EVENT_IDS),
      },
    };
  }

  /** The group for `key`, now the most recently fed; creating one may drop or evict others. */
  #group(key: string, c: Compiled, values: string[], ts: number): Group {
    let g = this.#groups.get(key);
    if (g !== undefined) {
      this.#groups.delete(key);
      this.#groups.set(key, g);
      return g;
    }
    // Drop groups whose window has passed, least recently fed first (they sit at the front).
    for (const [k, old] of this.#groups) {
      if (old.newest > ts - old.c.spec.timespan_ms) break;
      this.#groups.delete(k);
      this.#expired++;
    }
    while (this.#groups.size >= this.maxGroups) {
      const [k, old] = this.#groups.entries().next().value!;
      this.#groups.delete(k);
      if (old.newest <= ts - old.c.spec.timespan_ms) this.#expired++;
      else this.#evictions++;
    }
    g = {
      key,
      c,
      values,
      newest: ts,
      events: [],
      latest: new Map(),
      chain: c.spec.type === 'temporal_ordered' ? c.spec.rules.map(() => null) : [],
    };
    this.#groups.set(key, g);
    return g;
  }
}
