/**
 * What the engine returns for an event, and what the ledger records: the decision that was actually
 * enforced, with its reason. Pure types; no I/O.
 */
import type { EventType, SecurityEvent } from './types.js';

/** allow: forward. block: answer with the protocol's denial. error: the engine failed; fail closed
 * with the protocol's error denial (502, SERVFAIL, JSON-RPC error, refused exec). */
export type Verdict = 'allow' | 'block' | 'error';
export type RuleAction = 'allow' | 'block' | 'ask';
export type RuleMode = 'enforce' | 'shadow';
export type RuleKind = 'enforcement' | 'detection';
export const SEVERITIES = ['informational', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** How the verdict was reached: a rule decided, the default action applied, or the engine failed. */
export type DecisionMode = 'enforce' | 'default' | 'fail_closed';

export interface RuleMatch {
  rule_id: string;
  pack_id: string;
  kind: RuleKind;
  action: RuleAction;
  mode: RuleMode;
  severity: Severity | null;
  /** True for the one match that decided the verdict. */
  decisive: boolean;
}

/** What a correlation finding adds (src/detection/correlate.ts): the group and its events. */
export interface CorrelationFacts {
  type: 'event_count' | 'value_count' | 'temporal' | 'temporal_ordered';
  /** group_by field → the group's value ('' when the event lacked it). */
  group: Record<string, string>;
  /** Events or distinct values counted (distinct rules for the temporal types) when it fired. */
  count: number;
  timespan_ms: number;
  /** Ids of the contributing events, oldest first (bounded). */
  event_ids: string[];
}

export interface Finding {
  event_id: string;
  rule_id: string;
  pack_id: string;
  severity: Severity;
  confidence: number;
  title: string;
  tags: readonly string[];
  /** Contract fields the rule reads, e.g. ["http.request.host", "http.request.body.text"]. */
  matched_fields: readonly string[];
  /** Set on the finding of a correlation; the finding's event is the one that completed it. */
  correlation?: CorrelationFacts;
}

export interface RuleError {
  rule_id: string;
  code: string;
  message: string;
}

export interface Decision {
  action: Verdict;
  /** The deciding rule, or null when the default action applied (or the failure had no rule). */
  rule_id: string | null;
  /** One human sentence, readable by a model. */
  reason: string;
  mode: DecisionMode;
  /** Every rule that matched, in evaluation order (priority, id). */
  matches: readonly RuleMatch[];
  findings: readonly Finding[];
  /** Evaluation errors. One from a rule that was about to decide makes the verdict `error` (fail
   * closed); errors of rules that could not have decided are kept here and change nothing. */
  errors: readonly RuleError[];
  /** The plan generation that produced this decision. */
  generation: number;
  /** Time spent in decide(), nanoseconds. */
  eval_ns: number;
}

/** Anything that turns an event into a decision. Transport receives one; it never decides itself. */
export interface Decider {
  decide(event: SecurityEvent): Decision;
}

/** A decider that can also say whether a rule reads the body of an event type (the policy engine). */
export type BodyAwareDecider = Decider & { needsBody?: (type: EventType) => boolean };
