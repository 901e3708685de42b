/**
 * The policy engine: one plan snapshot per event, one projection per event, every applicable rule
 * evaluated in (priority, id) order. The first matching enforce-mode rule decides; every other match
 * (shadow rules, detections, later enforce rules) is recorded. Absent facts are false; any other
 * evaluation error in a rule that could have decided fails closed. Pure given an event; no I/O.
 */
import type { Decider, Decision, Finding, RuleError, RuleMatch } from '../events/decision.js';
import type { EventType, SecurityEvent } from '../events/types.js';
import { Absent } from './celenv.js';
import type { CompiledRule, Plan } from './plan.js';
import { project } from './projection.js';
import type { RuleRegistry } from './registry.js';

const EMPTY: readonly never[] = Object.freeze([]);

/** Per plan: whether an `ask` rule can decide an event type (computed on first question). */
const ASKS = new WeakMap<Plan, Map<EventType, boolean>>();

/** Event types that answer a request the engine already judged. */
const RESPONSE_TYPES: ReadonlySet<EventType> = new Set(['http.response', 'mcp.response']);

/** Per-rule evaluation time is measured on one decision in this many (timers cost more than rules). */
export const RULE_TIMING_SAMPLE_EVERY = 64;

function isAbsent(err: unknown): boolean {
  if (err instanceof Absent) return true;
  const e = err as { code?: unknown; cause?: unknown };
  return e?.code === 'no_such_key' || e?.cause instanceof Absent;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : ((err as Error)?.name ?? 'Error');
}

function finding(rule: CompiledRule, event: SecurityEvent): Finding | undefined {
  const def = rule.def;
  if (def.detection !== undefined) {
    return {
      event_id: event.common.event_id,
      rule_id: def.id,
      pack_id: def.pack_id,
      severity: def.severity ?? 'informational',
      confidence: def.detection.confidence,
      title: def.detection.title,
      tags: def.detection.tags,
      matched_fields: def.detection.matched_fields,
    };
  }
  if (def.severity === null) return undefined;
  return {
    event_id: event.common.event_id,
    rule_id: def.id,
    pack_id: def.pack_id,
    severity: def.severity,
    confidence: 1,
    title: def.description || def.reason || def.id,
    tags: def.tags,
    matched_fields: rule.condition.reads,
  };
}

function reasonFor(rule: CompiledRule): { action: 'allow' | 'block'; reason: string } {
  const def = rule.def;
  const why = def.reason || def.description || 'no reason given';
  if (def.action === 'allow')
    return { action: 'allow', reason: `Allowed by rule "${def.id}": ${why}` };
  if (def.action === 'ask') {
    return {
      action: 'block',
      reason: `Rule "${def.id}" requires approval (${why}), and no approver is configured, so this is blocked.`,
    };
  }
  return { action: 'block', reason: `Blocked by rule "${def.id}": ${why}` };
}

/** The body a rule reads that could not be decoded, or undefined (then the rule is evaluated). */
function undecodableBody(
  rule: CompiledRule,
  event: SecurityEvent,
): { root: string; encoding: string } | undefined {
  if (rule.refusesUndecodable.length === 0) return undefined;
  const http = (
    event as {
      http?: Record<
        string,
        { body?: { state: string }; headers?: Record<string, string> } | undefined
      >;
    }
  ).http;
  for (const root of rule.refusesUndecodable) {
    const part = http?.[root === 'http.request' ? 'request' : 'response'];
    if (part?.body?.state === 'undecodable')
      return { root, encoding: part.headers?.['content-encoding'] ?? '' };
  }
  return undefined;
}

export interface EngineOptions {
  /** Clock for per-rule timing samples, nanoseconds. */
  now?: () => number;
}

export class PolicyEngine implements Decider {
  readonly #registry: { snapshot(): Plan };
  #decisions = 0;
  readonly #now: () => number;

  constructor(registry: RuleRegistry | { snapshot(): Plan }, options: EngineOptions = {}) {
    this.#registry = registry;
    this.#now = options.now ?? (() => performance.now() * 1e6);
  }

  /** The current plan: transport asks it whether an event type needs bodies buffered. */
  plan(): Plan {
    return this.#registry.snapshot();
  }

  needsBody(type: EventType): boolean {
    return this.#registry.snapshot().readsBody[type];
  }

  /** Whether an enabled enforce-mode rule with action `ask` applies to events of `type`. */
  hasAsk(type: EventType): boolean {
    const plan = this.#registry.snapshot();
    let byType = ASKS.get(plan);
    if (byType === undefined) ASKS.set(plan, (byType = new Map()));
    let has = byType.get(type);
    if (has === undefined) {
      has = (plan.byEventType[type] ?? EMPTY).some((r) => r.decisive && r.def.action === 'ask');
      byType.set(type, has);
    }
    return has;
  }

  decide(event: SecurityEvent): Decision {
    return this.decideWith(this.#registry.snapshot(), event);
  }

  decideWith(plan: Plan, event: SecurityEvent): Decision {
    const start = performance.now();
    const rules = plan.byEventType[event.common.event_type] ?? EMPTY;
    const sample = ++this.#decisions % RULE_TIMING_SAMPLE_EVERY === 0;
    const ctx = rules.length === 0 ? undefined : project(event);
    let decider: CompiledRule | undefined;
    let failure: { rule: CompiledRule; error: unknown } | undefined;
    let undecodable: { rule: CompiledRule; root: string; encoding: string } | undefined;
    let matches: RuleMatch[] | undefined;
    let findings: Finding[] | undefined;
    let errors: RuleError[] | undefined;

    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const counters = rule.counters;
      counters.evaluations++;
      if (
        rule.decisive &&
        decider === undefined &&
        failure === undefined &&
        undecodable === undefined
      ) {
        // A rule that reads a body nobody could decode cannot judge it: fail closed, naming why.
        const u = undecodableBody(rule, event);
        if (u !== undefined) {
          undecodable = { rule, ...u };
          continue;
        }
      }
      const t0 = sample ? this.#now() : 0;
      let matched = false;
      try {
        matched = rule.condition.program(ctx!) === true;
      } catch (err) {
        if (!isAbsent(err)) {
          counters.errors++;
          (errors ??= []).push({
            rule_id: rule.def.id,
            code: errorCode(err),
            message: String((err as Error)?.message ?? err).split('\n')[0]!,
          });
          // An enforce rule that might have decided, erring before any decision: fail closed.
          if (
            rule.decisive &&
            decider === undefined &&
            failure === undefined &&
            undecodable === undefined
          )
            failure = { rule, error: err };
        }
      }
      if (sample) counters.eval_ns_total += (this.#now() - t0) * RULE_TIMING_SAMPLE_EVERY;
      if (!matched) continue;
      counters.matches++;
      counters.last_event_id = event.common.event_id;
      counters.last_matched_ms = event.common.timestamp_ms;
      const decides =
        rule.decisive &&
        decider === undefined &&
        failure === undefined &&
        undecodable === undefined;
      if (decides) decider = rule;
      (matches ??= []).push(decides ? rule.decisiveMatchRecord : rule.matchRecord);
      if (rule.def.severity !== null || rule.def.detection !== undefined) {
        const f = finding(rule, event);
        if (f !== undefined) (findings ??= []).push(f);
      }
    }

    let action: Decision['action'];
    let reason: string;
    let mode: Decision['mode'];
    let ruleId: string | null = null;
    if (undecodable !== undefined) {
      action = 'block';
      mode = 'fail_closed';
      ruleId = undecodable.rule.def.id;
      const what = undecodable.root === 'http.request' ? 'request' : 'response';
      const enc = undecodable.encoding === '' ? '' : ` (Content-Encoding: ${undecodable.encoding})`;
      reason = `The ${what} body could not be decoded${enc}, and rule "${ruleId}" reads it, so this is refused (fail closed). Send it uncompressed or as gzip, deflate or br.`;
    } else if (failure !== undefined) {
      action = 'error';
      mode = 'fail_closed';
      ruleId = failure.rule.def.id;
      const message = String((failure.error as Error)?.message ?? failure.error).split('\n')[0];
      reason = `Rule "${ruleId}" failed to evaluate (${message}), so this is refused (fail closed).`;
    } else if (decider !== undefined) {
      ({ action, reason } = reasonFor(decider));
      mode = 'enforce';
      ruleId = decider.def.id;
    } else if (RESPONSE_TYPES.has(event.common.event_type)) {
      // The default action judges crossings the guest starts. A response answers a request that was
      // already allowed; with no rule against the response, that decision stands — otherwise a
      // deny-by-default profile would refuse every response its own allow rules let through.
      action = 'allow';
      mode = 'default';
      reason = 'No rule matched the response; the request it answers was allowed.';
    } else {
      action = plan.defaultAction;
      mode = 'default';
      reason =
        action === 'allow'
          ? 'No rule matched; the default action is allow.'
          : 'No rule matched, and the default action is block: this destination is not on the allow list.';
    }
    const out: Decision = {
      action,
      rule_id: ruleId,
      reason,
      mode,
      matches: matches ?? EMPTY,
      findings: findings ?? EMPTY,
      errors: errors ?? EMPTY,
      generation: plan.generation,
      eval_ns: Math.round((performance.now() - start) * 1e6),
    };
    // An `ask` blocks here; an approver, when one is configured, may turn it (enforce.ts decideHeld).
    if (decider !== undefined && mode === 'enforce' && decider.def.action === 'ask') out.ask = true;
    return out;
  }
}
