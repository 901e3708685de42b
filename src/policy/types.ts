/**
 * Rule and pack shapes as policy authors write them, and the registry's view of an installed rule.
 * Pure types; no I/O.
 */
import type { RuleAction, RuleKind, RuleMode, Severity } from '../events/decision.js';

export const RULE_ID_PATTERN = /^[a-z0-9][a-z0-9_.-]*$/;
export const MIN_PRIORITY = -1000;
export const MAX_PRIORITY = 1000;

/** One enforcement rule as written in a pack (DESIGN §5). */
export interface RuleSpec {
  id: string;
  description: string;
  condition: string;
  action: RuleAction;
  priority: number;
  mode: RuleMode;
  reason: string;
  enabled: boolean;
  severity: Severity | null;
  tags: string[];
  /**
   * What this rule does when the body it reads could not be decoded (an unknown or broken
   * Content-Encoding): `refuse` (the default) fails closed — the request or response is blocked,
   * naming the reason — and `evaluate` runs the rule on the empty text.
   */
  undecodable_body?: UndecodableBody;
}

export const UNDECODABLE_BODY = ['refuse', 'evaluate'] as const;
export type UndecodableBody = (typeof UNDECODABLE_BODY)[number];

export type PackStatus = 'active' | 'deprecated' | 'revoked';

export interface PackSpec {
  id: string;
  version: string;
  status: PackStatus;
  owner: string;
  description: string;
  default_action: 'allow' | 'block';
  rules: RuleSpec[];
}

/** Detection metadata carried by rules lowered from Detection IR (src/detection). */
export interface DetectionMeta {
  title: string;
  confidence: number;
  tags: string[];
  /** Contract fields the rule reads; reported on findings. */
  matched_fields: string[];
}

/** What the registry installs: a rule plus where it came from. */
export interface RuleDefinition extends RuleSpec {
  pack_id: string;
  kind: RuleKind;
  /** Present for detection rules (and enforcement rules with a severity get one derived). */
  detection?: DetectionMeta;
}

export interface RuleCounters {
  matches: number;
  evaluations: number;
  last_event_id: string | null;
  last_matched_ms: number | null;
  /** Total evaluation time of this rule, nanoseconds. */
  eval_ns_total: number;
  errors: number;
}

export interface RuleInfo extends RuleDefinition {
  counters: RuleCounters;
  /** Root families the condition reads, e.g. ["http"]; empty means every family. */
  families: string[];
}
