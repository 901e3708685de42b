/**
 * A compiled plan: the immutable snapshot the engine evaluates. Rules are sorted by (priority, id)
 * and bucketed by the event types they run on. Built by the registry; never mutated after build
 * (only the per-rule counters it references move). Pure; no I/O.
 */
import type { RuleMatch } from '../events/decision.js';
import { EVENT_TYPES, type EventType } from '../events/types.js';
import type { CompiledCondition } from './compile.js';
import type { RuleCounters, RuleDefinition } from './types.js';

export interface CompiledRule {
  readonly def: Readonly<RuleDefinition>;
  readonly condition: CompiledCondition;
  /** Shared with the rule's successors on update, so counters carry over. */
  readonly counters: RuleCounters;
  /** True when a match of this rule can decide the verdict. */
  readonly decisive: boolean;
  /** Pre-built match records (reused: decisions only read them). */
  readonly matchRecord: Readonly<RuleMatch>;
  readonly decisiveMatchRecord: Readonly<RuleMatch>;
  /** The bodies (`http.request`, `http.response`) this rule refuses to judge when undecodable. */
  readonly refusesUndecodable: readonly ('http.request' | 'http.response')[];
}

export interface Plan {
  readonly generation: number;
  readonly defaultAction: 'allow' | 'block';
  /** Enabled rules in evaluation order. */
  readonly rules: readonly CompiledRule[];
  readonly byEventType: Readonly<Record<EventType, readonly CompiledRule[]>>;
  /** Whether any enabled rule for the event type reads a body (transport buffers only then). */
  readonly readsBody: Readonly<Record<EventType, boolean>>;
}

export function compareRules(a: CompiledRule, b: CompiledRule): number {
  return (
    a.def.priority - b.def.priority || (a.def.id < b.def.id ? -1 : a.def.id > b.def.id ? 1 : 0)
  );
}

export function buildPlan(
  entries: Iterable<CompiledRule>,
  generation: number,
  defaultAction: 'allow' | 'block',
): Plan {
  const rules = [...entries].filter((r) => r.def.enabled).sort(compareRules);
  const byEventType = {} as Record<EventType, CompiledRule[]>;
  const readsBody = {} as Record<EventType, boolean>;
  for (const t of EVENT_TYPES) {
    byEventType[t] = [];
    readsBody[t] = false;
  }
  for (const r of rules) {
    for (const t of r.condition.eventTypes) {
      byEventType[t].push(r);
      if (r.condition.readsBody) readsBody[t] = true;
    }
  }
  return Object.freeze({ generation, defaultAction, rules, byEventType, readsBody });
}

export function compiledRule(
  def: RuleDefinition,
  condition: CompiledCondition,
  counters?: RuleCounters,
): CompiledRule {
  const decisive = def.mode === 'enforce' && (def.kind === 'enforcement' || def.action === 'block');
  const base: RuleMatch = {
    rule_id: def.id,
    pack_id: def.pack_id,
    kind: def.kind,
    action: def.action,
    mode: def.mode,
    severity: def.severity,
    decisive: false,
  };
  const refusesUndecodable =
    def.undecodable_body === 'evaluate'
      ? []
      : (['http.request', 'http.response'] as const).filter((root) =>
          condition.reads.some((r) => r.startsWith(`${root}.body`)),
        );
  return {
    refusesUndecodable,
    def: Object.freeze({ ...def, tags: [...def.tags] }),
    condition,
    counters: counters ?? {
      matches: 0,
      evaluations: 0,
      last_event_id: null,
      last_matched_ms: null,
      eval_ns_total: 0,
      errors: 0,
    },
    decisive,
    matchRecord: Object.freeze(base),
    decisiveMatchRecord: Object.freeze({ ...base, decisive: true }),
  };
}
