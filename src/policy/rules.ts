/**
 * Validation of rule and pack objects as authors write them (YAML packs, the control API). Never
 * throws on user input: returns every problem with its path. Conditions are compiled here too, so a
 * rule that validates is a rule that installs. Pure; no I/O.
 */
import type { Issue, Validated } from '../errors.js';
import { SEVERITIES, type Severity } from '../events/decision.js';
import { compileCondition, type CompiledCondition } from './compile.js';
import {
  MAX_PRIORITY,
  MIN_PRIORITY,
  RULE_ID_PATTERN,
  UNDECODABLE_BODY,
  type PackSpec,
  type RuleSpec,
  type UndecodableBody,
} from './types.js';

export const RULE_KEYS = [
  'id',
  'description',
  'condition',
  'action',
  'priority',
  'mode',
  'reason',
  'enabled',
  'severity',
  'tags',
  'undecodable_body',
] as const;
export const PACK_KEYS = [
  'id',
  'version',
  'status',
  'owner',
  'description',
  'default_action',
  'rules',
] as const;
export const MAX_RULES_PER_PACK = 10_000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function closest(word: string, options: readonly string[]): string | undefined {
  return options.find((o) => o.startsWith(word.slice(0, 3)) || word.startsWith(o.slice(0, 3)));
}

function unknownKeys(o: Obj, allowed: readonly string[], path: string, issues: Issue[]): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      const hint = closest(key, allowed);
      issues.push({
        path: path === '' ? key : `${path}.${key}`,
        message: `unknown key "${key}"${hint ? `; did you mean "${hint}"?` : ''}`,
      });
    }
  }
}

export interface ValidatedRule {
  spec: RuleSpec;
  condition: CompiledCondition;
}

/** Validates one rule object; `path` prefixes issue paths (e.g. `rules[3]`). */
export function validateRule(raw: unknown, path = ''): Validated<ValidatedRule> {
  const issues: Issue[] = [];
  const at = (k: string) => (path === '' ? k : `${path}.${k}`);
  if (!isObj(raw)) return { ok: false, issues: [{ path, message: 'a rule must be a mapping' }] };
  unknownKeys(raw, RULE_KEYS, path, issues);
  const str = (k: string, required: boolean, fallback = ''): string => {
    const v = raw[k];
    if (v === undefined || v === null) {
      if (required) issues.push({ path: at(k), message: `"${k}" is required` });
      return fallback;
    }
    if (typeof v !== 'string') {
      issues.push({ path: at(k), message: `"${k}" must be a string` });
      return fallback;
    }
    return v;
  };
  const id = str('id', true);
  if (id !== '' && !RULE_ID_PATTERN.test(id)) {
    issues.push({
      path: at('id'),
      message: `id "${id}" must match ${RULE_ID_PATTERN.source} (lower-case letters, digits, _ . -)`,
    });
  }
  const conditionText = str('condition', true);
  const action = str('action', true);
  if (action !== '' && !['allow', 'block', 'ask'].includes(action)) {
    issues.push({
      path: at('action'),
      message: `action must be allow, block or ask (got "${action}")`,
    });
  }
  const mode = str('mode', false, 'enforce');
  if (!['enforce', 'shadow'].includes(mode))
    issues.push({ path: at('mode'), message: `mode must be enforce or shadow (got "${mode}")` });
  let priority = 0;
  if (raw.priority !== undefined) {
    if (typeof raw.priority !== 'number' || !Number.isInteger(raw.priority)) {
      issues.push({ path: at('priority'), message: 'priority must be an integer' });
    } else if (raw.priority < MIN_PRIORITY || raw.priority > MAX_PRIORITY) {
      issues.push({
        path: at('priority'),
        message: `priority ${raw.priority} is out of range ${MIN_PRIORITY}…${MAX_PRIORITY}`,
      });
    } else priority = raw.priority;
  }
  let enabled = true;
  if (raw.enabled !== undefined) {
    if (typeof raw.enabled !== 'boolean')
      issues.push({ path: at('enabled'), message: 'enabled must be true or false' });
    else enabled = raw.enabled;
  }
  let severity: Severity | null = null;
  if (raw.severity !== undefined && raw.severity !== null) {
    if (!(SEVERITIES as readonly unknown[]).includes(raw.severity)) {
      issues.push({
        path: at('severity'),
        message: `severity must be one of ${SEVERITIES.join(', ')}`,
      });
    } else severity = raw.severity as Severity;
  }
  let undecodable: UndecodableBody | undefined;
  if (raw.undecodable_body !== undefined) {
    if (!(UNDECODABLE_BODY as readonly unknown[]).includes(raw.undecodable_body)) {
      issues.push({
        path: at('undecodable_body'),
        message: `undecodable_body must be one of ${UNDECODABLE_BODY.join(', ')}`,
      });
    } else undecodable = raw.undecodable_body as UndecodableBody;
  }
  let tags: string[] = [];
  if (raw.tags !== undefined) {
    if (!Array.isArray(raw.tags) || !raw.tags.every((t) => typeof t === 'string')) {
      issues.push({ path: at('tags'), message: 'tags must be a list of strings' });
    } else tags = raw.tags as string[];
  }
  const description = str('description', false);
  const reason = str('reason', false);
  let condition: CompiledCondition | undefined;
  if (conditionText !== '') {
    const compiled = compileCondition(conditionText);
    if (compiled.ok) condition = compiled.condition;
    else for (const i of compiled.issues) issues.push({ ...i, path: at('condition') });
  }
  if (issues.length > 0 || condition === undefined) return { ok: false, issues };
  return {
    ok: true,
    value: {
      spec: {
        id,
        description,
        condition: conditionText,
        action: action as RuleSpec['action'],
        priority,
        mode: mode as RuleSpec['mode'],
        reason,
        enabled,
        severity,
        tags,
        ...(undecodable === undefined ? {} : { undecodable_body: undecodable }),
      },
      condition,
    },
  };
}

export interface ValidatedPack {
  pack: PackSpec;
  compiled: ValidatedRule[];
}

/** Validates a whole pack: envelope, every rule, duplicate ids, revoked status. */
export function validatePack(raw: unknown): Validated<ValidatedPack> {
  const issues: Issue[] = [];
  if (!isObj(raw))
    return {
      ok: false,
      issues: [{ path: '', message: 'a pack must be a mapping with id, version and rules' }],
    };
  unknownKeys(raw, PACK_KEYS, '', issues);
  const str = (k: string, required: boolean, fallback = ''): string => {
    const v = raw[k];
    if (v === undefined || v === null) {
      if (required) issues.push({ path: k, message: `"${k}" is required` });
      return fallback;
    }
    if (typeof v !== 'string' && typeof v !== 'number') {
      issues.push({ path: k, message: `"${k}" must be a string` });
      return fallback;
    }
    return String(v);
  };
  const id = str('id', true);
  if (id !== '' && !RULE_ID_PATTERN.test(id))
    issues.push({ path: 'id', message: `pack id "${id}" must match ${RULE_ID_PATTERN.source}` });
  const version = str('version', true);
  const status = str('status', false, 'active');
  if (!['active', 'deprecated', 'revoked'].includes(status))
    issues.push({ path: 'status', message: 'status must be active, deprecated or revoked' });
  if (status === 'revoked')
    issues.push({ path: 'status', message: `pack "${id}" is revoked and cannot be installed` });
  const defaultAction = str('default_action', false, 'allow');
  if (!['allow', 'block'].includes(defaultAction))
    issues.push({ path: 'default_action', message: 'default_action must be allow or block' });
  const rulesRaw = raw.rules ?? [];
  const compiled: ValidatedRule[] = [];
  if (!Array.isArray(rulesRaw)) issues.push({ path: 'rules', message: 'rules must be a list' });
  else if (rulesRaw.length > MAX_RULES_PER_PACK)
    issues.push({ path: 'rules', message: `a pack holds at most ${MAX_RULES_PER_PACK} rules` });
  else {
    const seen = new Map<string, number>();
    rulesRaw.forEach((r, i) => {
      const v = validateRule(r, `rules[${i}]`);
      if (!v.ok) issues.push(...v.issues);
      else {
        const prev = seen.get(v.value.spec.id);
        if (prev !== undefined)
          issues.push({
            path: `rules[${i}].id`,
            message: `duplicate rule id "${v.value.spec.id}" (first at rules[${prev}])`,
          });
        else seen.set(v.value.spec.id, i);
        compiled.push(v.value);
      }
    });
  }
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      pack: {
        id,
        version,
        status: status as PackSpec['status'],
        owner: str('owner', false),
        description: str('description', false),
        default_action: defaultAction as PackSpec['default_action'],
        rules: compiled.map((c) => c.spec),
      },
      compiled,
    },
  };
}
