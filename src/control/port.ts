/**
 * What the admin API needs from the rest of the gateway, as interfaces: the policy (rules, evaluate,
 * reload), the counters and ledger stats, and the session. `start.ts` provides them; the control
 * routes depend only on these shapes. Types only; no I/O.
 */
import type { Issue, Validated } from '../errors.js';
import type { Decider, Decision } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';
import type { RuleInfo } from '../policy/types.js';

export interface ReloadStats {
  reloads: number;
  refused: number;
  last_reload_ms: number | null;
  last_refusal_ms: number | null;
  last_refusal: Issue[] | null;
}

export interface ReloadResult {
  generation: number;
  rules: number;
  files: string[];
}

export interface PolicyPort {
  /** The live decider (engine over the registry's current plan). */
  readonly decider: Decider;
  generation(): number;
  defaultAction(): 'allow' | 'block';
  listRules(): RuleInfo[];
  getRule(id: string): RuleInfo | undefined;
  /** Installs or replaces one rule (the JSON shape of a pack rule); compile-checked. */
  putRule(id: string, input: unknown): Validated<RuleInfo>;
  /** Installs or replaces several rules at once: all of them, or (on any issue) none. */
  putRules(inputs: unknown[]): Validated<RuleInfo[]>;
  /** False when the id is unknown. */
  deleteRule(id: string): boolean;
  /** Enables or disables a rule without changing it; undefined when the id is unknown. */
  setEnabled(id: string, enabled: boolean): RuleInfo | undefined;
  /** Validates a rule, a list of rules or a whole pack without installing anything. */
  validate(input: unknown): Validated<{ rules: number }>;
  /** Decides an event against a supplied pack instead of the live plan (nothing is recorded). */
  evaluateWithPack(pack: unknown, event: SecurityEvent): Validated<Decision>;
  /** Re-reads the configured pack files; a failure refuses the whole set and keeps the plan. */
  reload(reason: string): Validated<ReloadResult>;
  reloadStats(): ReloadStats;
}
