/**
 * Validates the `correlations:` section of a Detection IR pack: shape, type, referenced rules (ids of
 * rules or correlations of the same pack, no cycles), group-by and value fields (scalar contract
 * fields carried by every event type that can feed the correlation), timespan and condition. Never
 * throws on input; every problem is reported through `add` with its path. Pure; no I/O.
 */
import { SEVERITIES, type Severity } from '../events/decision.js';
import type { EventType } from '../events/types.js';
import { RULE_ID_PATTERN } from '../policy/types.js';
import { resolveField } from './fields.js';
import type { PathSegment } from './source.js';
import {
  CORRELATION_OPS,
  CORRELATION_TYPES,
  MAX_CORRELATION_COUNT,
  MAX_CORRELATION_RULES,
  MAX_CORRELATIONS_PER_PACK,
  MAX_GROUP_BY,
  MAX_TIMESPAN_MS,
  MAX_VALUE_LENGTH,
  type CorrelationOp,
  type CorrelationType,
  type IrCorrelation,
  type IrRule,
  type IrRuleSource,
} from './types.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export const CORRELATION_KEYS = [
  'id',
  'title',
  'description',
  'type',
  'rules',
  'group_by',
  'timespan',
  'field',
  'condition',
  'severity',
  'confidence',
  'tags',
  'source',
];

export type AddIssue = (path: readonly PathSegment[], message: string, key?: boolean) => void;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `60s`, `5m`, `1h`, `1d` (Sigma's timespan) → milliseconds, or undefined when malformed. */
export function parseTimespan(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (m === null) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function validateCorrelations(
  raw: unknown,
  rules: readonly IrRule[],
  add: AddIssue,
  ruleSource: (v: unknown, path: PathSegment[]) => IrRuleSource | undefined,
): IrCorrelation[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    add(['correlations'], '"correlations" must be a list');
    return [];
  }
  if (raw.length > MAX_CORRELATIONS_PER_PACK) {
    add(['correlations'], `a pack holds at most ${MAX_CORRELATIONS_PER_PACK} correlations`);
    return [];
  }
  const ruleTypes = new Map<string, EventType[]>(rules.map((r) => [r.id, [r.event_type]]));
  const ids = new Set<string>(rules.map((r) => r.id));
  // Correlations may reference correlations defined anywhere in the list: collect ids first.
  raw.forEach((c) => {
    if (isObj(c) && typeof c.id === 'string') ids.add(c.id);
  });
  const out: IrCorrelation[] = [];
  const seen = new Set<string>(rules.map((r) => r.id));
  raw.forEach((c, i) => {
    const corr = validateOne(c, ['correlations', i], ids, add, ruleSource);
    if (corr === undefined) return;
    if (seen.has(corr.id))
      add(['correlations', i, 'id'], `id "${corr.id}" is already used by a rule or correlation`);
    seen.add(corr.id);
    out.push(corr);
  });
  // Cycles, then fields against the event types that can feed each correlation.
  const byId = new Map(out.map((c) => [c.id, c]));
  const state = new Map<string, 'visiting' | 'done'>();
  const typesOf = (id: string, path: string[]): EventType[] => {
    const known = ruleTypes.get(id);
    if (known !== undefined) return known;
    const c = byId.get(id);
    if (c === undefined) return [];
    if (state.get(id) === 'visiting') throw new Cycle([...path, id]);
    state.set(id, 'visiting');
    const types = [...new Set(c.rules.flatMap((r) => typesOf(r, [...path, id])))];
    state.set(id, 'done');
    ruleTypes.set(id, types);
    return types;
  };
  const valid: IrCorrelation[] = [];
  out.forEach((c) => {
    const i = raw.indexOf(raw.find((x) => isObj(x) && x.id === c.id));
    let types: EventType[];
    try {
      types = typesOf(c.id, []);
    } catch (err) {
      if (!(err instanceof Cycle)) throw err;
      add(
        ['correlations', i, 'rules'],
        `correlations reference each other in a cycle: ${err.path.join(' → ')}`,
      );
      return;
    }
    let ok = true;
    const check = (field: string, path: PathSegment[]) => {
      for (const t of types) {
        const res = resolveField(field, t);
        if (!res.ok) {
          add(path, `${res.message} (a ${t} rule feeds this correlation)`);
          ok = false;
          return;
        }
        if (res.field.kind !== 'field' || !['string', 'int', 'bool'].includes(res.field.type)) {
          add(path, `"${field}" must be a string, int or bool contract field`);
          ok = false;
          return;
        }
      }
    };
    c.group_by.forEach((f, j) => check(f, ['correlations', i, 'group_by', j]));
    if (c.field !== null) check(c.field, ['correlations', i, 'field']);
    if (ok) valid.push(c);
  });
  return valid;
}

class Cycle extends Error {
  constructor(readonly path: string[]) {
    super('cycle');
  }
}

function validateOne(
  c: unknown,
  path: PathSegment[],
  ids: ReadonlySet<string>,
  add: AddIssue,
  ruleSource: (v: unknown, path: PathSegment[]) => IrRuleSource | undefined,
): IrCorrelation | undefined {
  if (!isObj(c)) {
    add(path, 'a correlation must be a mapping');
    return undefined;
  }
  let bad = false;
  const fail = (p: PathSegment[], message: string, key = false) => {
    add(p, message, key);
    bad = true;
  };
  for (const k of Object.keys(c))
    if (!CORRELATION_KEYS.includes(k))
      fail(
        [...path, k],
        `unknown key "${k}" in correlation (allowed: ${CORRELATION_KEYS.join(', ')})`,
        true,
      );
  const str = (key: string, required: boolean): string => {
    const v = c[key];
    if (v === undefined || v === null) {
      if (required) fail([...path, key], `"${key}" is required`);
      return '';
    }
    if (typeof v !== 'string' || (required && v.trim() === '') || v.length > MAX_VALUE_LENGTH) {
      fail(
        [...path, key],
        `"${key}" must be a non-empty string of at most ${MAX_VALUE_LENGTH} characters`,
      );
      return '';
    }
    return v;
  };
  const id = str('id', true);
  if (id !== '' && !RULE_ID_PATTERN.test(id))
    fail([...path, 'id'], `"${id}" must match ${RULE_ID_PATTERN.source}`);
  const title = str('title', true);
  const description = str('description', false);
  const type = c.type as CorrelationType;
  if (!(CORRELATION_TYPES as readonly string[]).includes(c.type as string))
    fail([...path, 'type'], `"type" must be one of ${CORRELATION_TYPES.join(', ')}`);
  const rules: string[] = [];
  if (
    !Array.isArray(c.rules) ||
    c.rules.length === 0 ||
    c.rules.length > MAX_CORRELATION_RULES ||
    !c.rules.every((r) => typeof r === 'string')
  )
    fail(
      [...path, 'rules'],
      `"rules" must be a list of 1…${MAX_CORRELATION_RULES} rule or correlation ids`,
    );
  else
    (c.rules as string[]).forEach((r, j) => {
      if (!ids.has(r))
        fail([...path, 'rules', j], `"${r}" is not a rule or correlation of this pack`);
      else if (r === id) fail([...path, 'rules', j], 'a correlation cannot reference itself');
      else if (rules.includes(r)) fail([...path, 'rules', j], `"${r}" is listed twice`);
      else rules.push(r);
    });
  const groupBy: string[] = [];
  const gb = c.group_by ?? [];
  if (
    !Array.isArray(gb) ||
    gb.length > MAX_GROUP_BY ||
    !gb.every((f) => typeof f === 'string' && f !== '')
  )
    fail([...path, 'group_by'], `"group_by" must be a list of at most ${MAX_GROUP_BY} fields`);
  else groupBy.push(...(gb as string[]));
  const timespan = str('timespan', true);
  const timespanMs = parseTimespan(timespan);
  if (timespan !== '' && (timespanMs === undefined || timespanMs > MAX_TIMESPAN_MS))
    fail(
      [...path, 'timespan'],
      `"timespan" must be a number and a unit (s, m, h, d), e.g. 60s or 5m, of at most 30d`,
    );
  let field: string | null = null;
  if (type === 'value_count') {
    field = str('field', true) || null;
  } else if (c.field !== undefined) {
    fail([...path, 'field'], '"field" applies to value_count correlations only');
  }
  const condition = conditionOf(c.condition, type, rules.length, [...path, 'condition'], fail);
  const severity = c.severity as Severity;
  if (!(SEVERITIES as readonly string[]).includes(c.severity as string))
    fail([...path, 'severity'], `"severity" must be one of ${SEVERITIES.join(', ')}`);
  const confidence = c.confidence ?? 0.5;
  if (typeof confidence !== 'number' || !(confidence >= 0 && confidence <= 1))
    fail([...path, 'confidence'], '"confidence" must be a number from 0 to 1');
  const tags = c.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t !== ''))
    fail([...path, 'tags'], '"tags" must be a list of non-empty strings');
  const source = ruleSource(c.source, [...path, 'source']);
  if (bad || condition === undefined || timespanMs === undefined) return undefined;
  const out: IrCorrelation = {
    id,
    title,
    description,
    type,
    rules,
    group_by: groupBy,
    timespan,
    timespan_ms: timespanMs,
    field,
    condition,
    severity,
    confidence: confidence as number,
    tags: [...(tags as string[])],
  };
  if (source !== undefined) out.source = source;
  return out;
}

function conditionOf(
  raw: unknown,
  type: CorrelationType,
  ruleCount: number,
  path: PathSegment[],
  fail: (p: PathSegment[], message: string) => void,
): IrCorrelation['condition'] | undefined {
  const temporal = type === 'temporal' || type === 'temporal_ordered';
  // Temporal correlations default to "every referenced rule".
  if (raw === undefined && temporal) return { op: 'gte', count: Math.max(1, ruleCount) };
  if (!isObj(raw)) {
    fail(path, `"condition" must be a mapping with one of ${CORRELATION_OPS.join(', ')}`);
    return undefined;
  }
  const keys = Object.keys(raw);
  const refused = keys.filter((k) => !(CORRELATION_OPS as readonly string[]).includes(k));
  if (refused.length > 0 || keys.length !== 1) {
    fail(
      path,
      refused.some((k) => ['lt', 'lte', 'neq'].includes(k))
        ? `"${refused.join('", "')}" is not supported: a correlation is tested as events arrive, so it takes exactly one lower bound (${CORRELATION_OPS.join(', ')})`
        : `"condition" takes exactly one of ${CORRELATION_OPS.join(', ')}`,
    );
    return undefined;
  }
  const op = keys[0] as CorrelationOp;
  const count = raw[op];
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
    fail([...path, op], 'the count must be a non-negative integer');
    return undefined;
  }
  const needed = op === 'gt' ? count + 1 : count;
  if (needed < 1 || needed > MAX_CORRELATION_COUNT) {
    fail([...path, op], `the condition must need 1…${MAX_CORRELATION_COUNT} events or values`);
    return undefined;
  }
  if (temporal && needed > ruleCount) {
    fail([...path, op], `a ${type} correlation counts distinct rules: at most ${ruleCount}`);
    return undefined;
  }
  if (type === 'temporal_ordered' && needed !== ruleCount) {
    fail([...path, op], 'a temporal_ordered correlation needs every rule, in order');
    return undefined;
  }
  return { op, count };
}
