/**
 * Detection IR (`celgate.detection-ir/v1`) as validated values: packs, rules, the match tree and
 * per-rule test cases, plus the bounds the validator enforces. Pure types and constants; no I/O.
 * Owns the IR vocabulary; must not know about CEL text (see lower.ts) or storage.
 */
import type { EventType } from '../events/types.js';
import type { Severity } from '../events/decision.js';
import type { PackStatus } from '../policy/types.js';

export const IR_SCHEMA = 'celgate.detection-ir/v1';

/** Predicate operators, in the order lowering and docs list them. */
export const STRING_OPS = ['equals', 'contains', 'startswith', 'endswith', 'matches'] as const;
export const PREDICATE_OPS = [...STRING_OPS, 'exists', 'cidr'] as const;
export type StringOp = (typeof STRING_OPS)[number];
export type PredicateOp = (typeof PREDICATE_OPS)[number];

/** Bounds on pack input (packs may come from third parties, DESIGN §1). */
export const MAX_PACK_BYTES = 1024 * 1024;
export const MAX_RULES_PER_PACK = 5000;
export const MAX_VALUES_PER_PREDICATE = 1000;
export const MAX_VALUE_LENGTH = 4096;
export { MAX_REGEX_LENGTH } from '../policy/regex-limits.js';
export const MAX_MATCH_DEPTH = 16;
export const MAX_MATCH_NODES = 2000;
export const MAX_TESTS_PER_RULE = 100;

export type PredicateValue = string | number | boolean;

export interface IrPredicate {
  /** A contract field (`http.request.host`) or a header (`http.request.headers.user-agent`). */
  field: string;
  op: PredicateOp;
  /** For `exists`: a single boolean. Otherwise a non-empty list; the predicate holds when any value does. */
  values: PredicateValue[];
  case_insensitive: boolean;
}

export type MatchNode =
  | { kind: 'all'; children: MatchNode[] }
  | { kind: 'any'; children: MatchNode[] }
  | { kind: 'not'; child: MatchNode }
  | { kind: 'predicate'; predicate: IrPredicate };

export type TestExpectation = 'match' | 'no_match';

export interface IrTestCase {
  name: string;
  /** Event JSON as accepted by `eventFromJson`; `common.event_type` defaults to the rule's type. */
  event: Record<string, unknown>;
  expect: TestExpectation;
}

/**
 * Where a rule came from (set by importers, kept through validation, lowering and findings output):
 * the source rule's id and its provenance as the source format states it (Sigma's references,
 * falsepositives, author, date, modified, logsource and related).
 */
export interface IrRuleSource {
  kind?: string;
  id?: string;
  author?: string;
  date?: string;
  modified?: string;
  references?: string[];
  falsepositives?: string[];
  logsource?: Record<string, string>;
  related?: { id: string; type: string }[];
}
export const RULE_SOURCE_KEYS = [
  'kind',
  'id',
  'author',
  'date',
  'modified',
  'references',
  'falsepositives',
  'logsource',
  'related',
] as const;
export const MAX_SOURCE_LIST = 100;

export interface IrRule {
  id: string;
  title: string;
  description: string;
  event_type: EventType;
  severity: Severity;
  /** 0..1 */
  confidence: number;
  tags: string[];
  /** `block` promotes the detection to an enforcement rule; absent means detect only. */
  action: 'block' | null;
  /** false: the rule only feeds correlations; its matches are not recorded or reported as
   * findings (Sigma's correlation `generate`). Absent means true. */
  generate?: false;
  match: MatchNode;
  tests: IrTestCase[];
  /** Provenance of an imported rule; absent for hand-written ones. */
  source?: IrRuleSource;
  /** 1-based line of the rule in its source, when the source had lines. */
  line?: number;
}

/** Correlation types (Sigma correlation rules, `celgate.detection-ir/v1` `correlations:`). */
export const CORRELATION_TYPES = [
  'event_count',
  'value_count',
  'temporal',
  'temporal_ordered',
] as const;
export type CorrelationType = (typeof CORRELATION_TYPES)[number];
/** Condition operators a correlation can test as events arrive (an upper bound — lt, lte — or neq
 * would need the window to close without an event, which an event-driven evaluator never sees). */
export const CORRELATION_OPS = ['gt', 'gte', 'eq'] as const;
export type CorrelationOp = (typeof CORRELATION_OPS)[number];

export const MAX_CORRELATIONS_PER_PACK = 1000;
/** Rules one correlation may reference, and fields it may group by. */
export const MAX_CORRELATION_RULES = 32;
export const MAX_GROUP_BY = 8;
/** Largest count a condition may ask for: the entries one group keeps are bounded by it. */
export const MAX_CORRELATION_COUNT = 10_000;
/** Longest timespan: 30 days. */
export const MAX_TIMESPAN_MS = 30 * 24 * 3600 * 1000;

export interface IrCorrelation {
  id: string;
  title: string;
  description: string;
  type: CorrelationType;
  /** Ids of the rules (or correlations) of the same pack whose findings feed this one. */
  rules: string[];
  /** Contract fields (scalar) whose values form a group; [] = one group. */
  group_by: string[];
  /** As written (`60s`, `5m`, `1h`, `1d`) and in milliseconds. */
  timespan: string;
  timespan_ms: number;
  /** value_count: the contract field whose distinct values are counted; otherwise null. */
  field: string | null;
  condition: { op: CorrelationOp; count: number };
  severity: Severity;
  confidence: number;
  tags: string[];
  source?: IrRuleSource;
  line?: number;
}

export interface IrSource {
  /** Where an imported pack came from, e.g. "sigma". */
  kind: string;
  /** Source field name → contract field, as used by the importer. */
  field_mapping: Record<string, string>;
}

export interface IrPack {
  schema: typeof IR_SCHEMA;
  id: string;
  version: string;
  status: PackStatus;
  owner: string;
  description: string;
  source: IrSource | null;
  rules: IrRule[];
  /** Correlations over the findings of this pack's rules ([] when none). */
  correlations: IrCorrelation[];
  /** File the pack was read from, when there was one. */
  file?: string;
}
