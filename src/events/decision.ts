/**
 * What the engine returns for an event, and what the ledger records: the decision that was actually
 * enforced, with its reason. Types and the built-in guards' match; no I/O.
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

/** The deciding match of one of celgate's built-in guards (pack `celgate`), a high-severity block. */
export function builtinBlockMatch(ruleId: string): RuleMatch {
  return {
    rule_id: ruleId,
    pack_id: 'celgate',
    kind: 'enforcement',
    action: 'block',
    mode: 'enforce',
    severity: 'high',
    decisive: true,
  };
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
  /** Set when the deciding rule's action is `ask`: the verdict is `block` unless an approver answers
   * (src/events/enforce.ts `decideHeld`). Absent otherwise. */
  ask?: true;
  /** How a held `ask` was answered (docs/approvals.md); absent when nothing was held. */
  approval?: ApprovalRecord;
}

/** What an approver answered, or why nobody did. */
export type ApprovalAnswer = 'allow' | 'deny' | 'timeout' | 'overflow' | 'closed';

/** The approval part of a decision that was held for a human answer (recorded in `approvals`). */
export interface ApprovalRecord {
  /** The pending approval's id (GET /v1/approvals). */
  id: string;
  answer: ApprovalAnswer;
  /** Who answered: the control peer ("control-socket" on the Unix socket, "token" over TCP), or null
   * when nobody did. */
  by: string | null;
  /** From holding to answering, milliseconds. */
  waited_ms: number;
  /** `session`: an exact-match rule now answers identical requests for the rest of the session. */
  remember: 'none' | 'session';
  /** The protocol (`http`, `dns`, `mcp`, `exec`) and the target the approver was shown. */
  protocol: string;
  target: string;
}

/** Anything that turns an event into a decision. Transport receives one; it never decides itself. */
export interface Decider {
  decide(event: SecurityEvent): Decision;
}

/** A decider that can also say whether a rule reads the body of an event type (the policy engine). */
export type BodyAwareDecider = Decider & { needsBody?: (type: EventType) => boolean };

/**
 * A decider whose `ask` decisions a human approver may answer (the gateway's, when `approvals` are
 * on; src/control/approvals.ts). Transports reach it only through src/events/enforce.ts.
 */
export interface Holding {
  /** Holds an `ask` decision until an approver answers (or the bound passes) and resolves to the
   * decision to enforce; a Decision when it is refused at once (nobody to answer, too many held);
   * undefined to leave the engine's decision (a block) as it is. */
  hold?: (event: SecurityEvent, decision: Decision) => Promise<Decision> | Decision | undefined;
  /** Whether an enforce-mode `ask` rule could decide events of `type` and an approver may answer:
   * the fast HTTP paths hand such requests to the path that can wait. */
  mayAsk?: (type: EventType) => boolean;
}
