/**
 * PolicyPort over the policy engine: rules CRUD, validate, evaluate-with-pack, reload from pack
 * files. PROVISIONAL: src/policy's registry/engine/pack loader have not landed yet, so this version
 * fails closed — every decision is `error` ("policy engine not available") and rule changes are
 * refused. It is replaced by the real implementation as soon as RuleRegistry/PolicyEngine exist.
 */
import type { Validated } from '../errors.js';
import type { Decider, Decision } from '../events/decision.js';
import type { PolicyPort, ReloadResult, ReloadStats } from './port.js';

export interface PolicyPortOptions {
  /** Pack files/dirs loaded at start and on reload (profile first). */
  packPaths: string[];
}

const UNAVAILABLE = [{ path: '', message: 'the policy engine is not available in this build' }];

export function createPolicyPort(_opts: PolicyPortOptions): PolicyPort {
  const stats: ReloadStats = { reloads: 0, refused: 0, last_reload_ms: null, last_refusal_ms: null, last_refusal: null };
  const decider: Decider = {
    decide(): Decision {
      return {
        action: 'error',
        rule_id: null,
        reason: 'The policy engine is not available; celgate fails closed.',
        mode: 'fail_closed',
        matches: [],
        findings: [],
        errors: [{ rule_id: '', code: 'E_UNAVAILABLE', message: 'policy engine not available' }],
        generation: 0,
        eval_ns: 0,
      };
    },
  };
  const refuse = <T>(): Validated<T> => ({ ok: false, issues: UNAVAILABLE });
  return {
    decider,
    generation: () => 0,
    defaultAction: () => 'block',
    listRules: () => [],
    getRule: () => undefined,
    putRule: () => refuse(),
    deleteRule: () => false,
    validate: () => refuse(),
    evaluateWithPack: () => refuse(),
    // Loads nothing: the gateway can start (and fail closed) until the engine lands.
    reload: (): Validated<ReloadResult> => ({ ok: true, value: { generation: 0, rules: 0, files: [] } }),
    reloadStats: () => ({ ...stats }),
  };
}
