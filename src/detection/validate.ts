/**
 * Validates Detection IR pack text or values into `IrPack`s. Never throws on input: every problem is
 * reported as an Issue with its path and (for YAML/JSON text) line. Checks the envelope, rule
 * shapes, field paths against the policy field table for the rule's event type, value types, empty
 * value lists, regex validity and catastrophic-backtracking risk, CIDR syntax, duplicate ids, and
 * revoked packs. Pure; no file I/O; must not compile CEL (see install.ts).
 */
import { SEVERITIES, type Severity } from '../events/decision.js';
import { EVENT_TYPES, type EventType } from '../events/types.js';
import type { Issue, Validated } from '../errors.js';
import { RULE_ID_PATTERN, type PackStatus } from '../policy/types.js';
import { parseCidr } from './cidr.js';
import { validateCorrelations } from './correlation-validate.js';
import { resolveField, type ResolvedField } from './fields.js';
import { regexProblem } from '../policy/regex.js';
import { parseSource, pathString, type PathSegment, type SourceDoc } from './source.js';
import {
  IR_SCHEMA,
  MAX_MATCH_DEPTH,
  MAX_MATCH_NODES,
  MAX_PACK_BYTES,
  MAX_RULES_PER_PACK,
  MAX_TESTS_PER_RULE,
  MAX_VALUE_LENGTH,
  MAX_SOURCE_LIST,
  MAX_VALUES_PER_PREDICATE,
  PREDICATE_OPS,
  RULE_SOURCE_KEYS,
  type IrPack,
  type IrRule,
  type IrRuleSource,
  type IrSource,
  type IrTestCase,
  type MatchNode,
  type PredicateOp,
  type PredicateValue,
} from './types.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export const PACK_KEYS = [
  'schema',
  'id',
  'version',
  'status',
  'owner',
  'description',
  'source',
  'rules',
  'correlations',
];
export const RULE_KEYS = [
  'id',
  'title',
  'description',
  'event_type',
  'severity',
  'confidence',
  'tags',
  'action',
  'generate',
  'match',
  'tests',
  'source',
];
export const PREDICATE_KEYS = ['field', 'case_insensitive', ...PREDICATE_OPS];
export const TEST_KEYS = ['name', 'event', 'expect'];
const STATUSES: readonly PackStatus[] = ['active', 'deprecated', 'revoked'];

class Ctx {
  readonly issues: Issue[] = [];
  nodes = 0;
  constructor(
    readonly file: string | undefined,
    readonly doc: SourceDoc | undefined,
  ) {}
  add(path: readonly PathSegment[], message: string, key = false): void {
    const line = this.doc?.lineOf(path, key);
    this.issues.push({
      ...(this.file === undefined ? {} : { file: this.file }),
      ...(line === undefined ? {} : { line }),
      path: pathString(path),
      message,
    });
  }
  keys(o: Obj, allowed: readonly string[], path: readonly PathSegment[], what: string): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k))
        this.add(
          [...path, k],
          `unknown key "${k}" in ${what} (allowed: ${allowed.join(', ')})`,
          true,
        );
    }
  }
  str(o: Obj, key: string, path: readonly PathSegment[], required: boolean): string {
    const v = o[key];
    if (v === undefined || v === null) {
      if (required) this.add([...path, key], `"${key}" is required`);
      return '';
    }
    if (typeof v !== 'string') {
      this.add([...path, key], `"${key}" must be a string`);
      return '';
    }
    if (required && v.trim() === '') this.add([...path, key], `"${key}" must not be empty`);
    if (v.length > MAX_VALUE_LENGTH)
      this.add([...path, key], `"${key}" is longer than ${MAX_VALUE_LENGTH} characters`);
    return v;
  }
  oneOf<T extends string>(
    o: Obj,
    key: string,
    allowed: readonly T[],
    path: readonly PathSegment[],
  ): T | undefined {
    const v = o[key];
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    this.add(
      [...path, key],
      v === undefined
        ? `"${key}" is required (one of ${allowed.join(', ')})`
        : `"${key}" must be one of ${allowed.join(', ')}`,
    );
    return undefined;
  }
  id(o: Obj, key: string, path: readonly PathSegment[]): string {
    const v = this.str(o, key, path, true);
    if (v !== '' && !RULE_ID_PATTERN.test(v))
      this.add([...path, key], `"${v}" must match ${RULE_ID_PATTERN.source}`);
    return v;
  }
}

export interface ValidateOptions {
  file?: string;
}

/** Parses YAML or JSON pack text and validates it. */
export function validatePackText(text: string, options: ValidateOptions = {}): Validated<IrPack> {
  if (text.length > MAX_PACK_BYTES) {
    return {
      ok: false,
      issues: [
        {
          ...(options.file === undefined ? {} : { file: options.file }),
          path: '',
          message: `pack is larger than ${MAX_PACK_BYTES} bytes`,
        },
      ],
    };
  }
  const parsed = parseSource(text, options.file);
  if (!parsed.ok) return parsed;
  return validateWith(new Ctx(options.file, parsed.doc), parsed.doc.value);
}

/** Validates an already-parsed pack value (e.g. a JSON body of the control API). */
export function validatePackValue(
  value: unknown,
  options: ValidateOptions = {},
): Validated<IrPack> {
  return validateWith(new Ctx(options.file, undefined), value);
}

/** Cross-pack checks for a set of individually valid packs: duplicate pack ids and rule ids. */
export function checkPackSet(packs: readonly IrPack[]): Issue[] {
  const issues: Issue[] = [];
  const packIds = new Map<string, string | undefined>();
  const ruleIds = new Map<string, string>();
  for (const pack of packs) {
    const where = pack.file === undefined ? {} : { file: pack.file };
    if (packIds.has(pack.id))
      issues.push({
        ...where,
        path: 'id',
        message: `duplicate pack id "${pack.id}" (also in ${packIds.get(pack.id) ?? 'another pack'})`,
      });
    packIds.set(pack.id, pack.file);
    pack.rules.forEach((rule, i) => {
      const other = ruleIds.get(rule.id);
      if (other !== undefined && other !== pack.id) {
        issues.push({
          ...where,
          ...(rule.line === undefined ? {} : { line: rule.line }),
          path: `rules[${i}].id`,
          message: `duplicate rule id "${rule.id}" (also in pack "${other}")`,
        });
      }
      ruleIds.set(rule.id, pack.id);
    });
    pack.correlations.forEach((c, i) => {
      const other = ruleIds.get(c.id);
      if (other !== undefined && other !== pack.id)
        issues.push({
          ...where,
          path: `correlations[${i}].id`,
          message: `duplicate rule or correlation id "${c.id}" (also in pack "${other}")`,
        });
      ruleIds.set(c.id, pack.id);
    });
  }
  return issues;
}

function validateWith(ctx: Ctx, value: unknown): Validated<IrPack> {
  if (!isObj(value)) {
    ctx.add([], 'a detection pack must be a mapping (YAML) or object (JSON)');
    return { ok: false, issues: ctx.issues };
  }
  ctx.keys(value, PACK_KEYS, [], 'pack');
  if (value.schema !== IR_SCHEMA) ctx.add(['schema'], `"schema" must be "${IR_SCHEMA}"`);
  const id = ctx.id(value, 'id', []);
  const version = ctx.str(value, 'version', [], true);
  const status = ctx.oneOf(value, 'status', STATUSES, []);
  if (status === 'revoked') ctx.add(['status'], `pack "${id}" is revoked and cannot be installed`);
  const owner = ctx.str(value, 'owner', [], true);
  const description = ctx.str(value, 'description', [], false);
  const source = validateSource(ctx, value.source);
  const rules: IrRule[] = [];
  const raw = value.rules;
  if (!Array.isArray(raw) || raw.length === 0)
    ctx.add(['rules'], '"rules" must be a non-empty list');
  else if (raw.length > MAX_RULES_PER_PACK)
    ctx.add(['rules'], `a pack holds at most ${MAX_RULES_PER_PACK} rules`);
  else {
    const seen = new Map<string, number>();
    raw.forEach((r, i) => {
      const rule = validateRule(ctx, r, ['rules', i]);
      if (rule === undefined) return;
      const first = seen.get(rule.id);
      if (first !== undefined)
        ctx.add(['rules', i, 'id'], `duplicate rule id "${rule.id}" (first at rules[${first}])`);
      else seen.set(rule.id, i);
      rules.push(rule);
    });
  }
  const correlations =
    ctx.issues.length > 0
      ? []
      : validateCorrelations(
          value.correlations,
          rules,
          (path, message, key) => ctx.add(path, message, key),
          (v, path) => validateRuleSource(ctx, v, path),
        );
  if (ctx.issues.length > 0) return { ok: false, issues: ctx.issues };
  const pack: IrPack = {
    schema: IR_SCHEMA,
    id,
    version,
    status: status!,
    owner,
    description,
    source,
    rules,
    correlations,
  };
  if (ctx.file !== undefined) pack.file = ctx.file;
  return { ok: true, value: pack };
}

function validateSource(ctx: Ctx, v: unknown): IrSource | null {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) {
    ctx.add(['source'], '"source" must be a mapping with "kind" and "field_mapping"');
    return null;
  }
  ctx.keys(v, ['kind', 'field_mapping'], ['source'], 'source');
  const kind = ctx.str(v, 'kind', ['source'], true);
  const mapping: Record<string, string> = {};
  const fm = v.field_mapping ?? {};
  if (!isObj(fm))
    ctx.add(
      ['source', 'field_mapping'],
      '"field_mapping" must map source field names to contract fields',
    );
  else
    for (const [k, val] of Object.entries(fm)) {
      if (typeof val !== 'string')
        ctx.add(['source', 'field_mapping', k], 'must be a contract field path');
      else mapping[k] = val;
    }
  return { kind, field_mapping: mapping };
}

/** A rule's optional provenance: short strings, lists of at most MAX_SOURCE_LIST strings, a string map. */
function validateRuleSource(ctx: Ctx, v: unknown, path: PathSegment[]): IrRuleSource | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    ctx.add(
      path,
      '"source" must be a mapping (kind, id, author, date, modified, references, falsepositives, logsource, related)',
    );
    return undefined;
  }
  ctx.keys(v, [...RULE_SOURCE_KEYS], path, 'rule source');
  const out: IrRuleSource = {};
  const short = (x: unknown) => typeof x === 'string' && x !== '' && x.length <= MAX_VALUE_LENGTH;
  for (const k of ['kind', 'id', 'author', 'date', 'modified'] as const) {
    if (v[k] === undefined) continue;
    if (short(v[k])) out[k] = v[k] as string;
    else
      ctx.add(
        [...path, k],
        `"${k}" must be a non-empty string of at most ${MAX_VALUE_LENGTH} characters`,
      );
  }
  for (const k of ['references', 'falsepositives'] as const) {
    if (v[k] === undefined) continue;
    const list = v[k];
    if (!Array.isArray(list) || list.length > MAX_SOURCE_LIST || !list.every(short))
      ctx.add(
        [...path, k],
        `"${k}" must be a list of at most ${MAX_SOURCE_LIST} non-empty strings`,
      );
    else out[k] = [...(list as string[])];
  }
  if (v.logsource !== undefined) {
    const ls = v.logsource;
    if (!isObj(ls) || Object.keys(ls).length > MAX_SOURCE_LIST || !Object.values(ls).every(short))
      ctx.add([...path, 'logsource'], '"logsource" must map names to non-empty strings');
    else out.logsource = { ...(ls as Record<string, string>) };
  }
  if (v.related !== undefined) {
    const rel = v.related;
    const okItem = (x: unknown) =>
      isObj(x) &&
      short(x.id) &&
      short(x.type) &&
      Object.keys(x).every((k) => k === 'id' || k === 'type');
    if (!Array.isArray(rel) || rel.length > MAX_SOURCE_LIST || !rel.every(okItem))
      ctx.add(
        [...path, 'related'],
        `"related" must be a list of at most ${MAX_SOURCE_LIST} {id, type} mappings`,
      );
    else
      out.related = (rel as { id: string; type: string }[]).map((x) => ({
        id: x.id,
        type: x.type,
      }));
  }
  return out;
}

function validateRule(ctx: Ctx, r: unknown, path: PathSegment[]): IrRule | undefined {
  if (!isObj(r)) {
    ctx.add(path, 'a rule must be a mapping');
    return undefined;
  }
  const before = ctx.issues.length;
  ctx.keys(r, RULE_KEYS, path, 'rule');
  const id = ctx.id(r, 'id', path);
  const title = ctx.str(r, 'title', path, true);
  const description = ctx.str(r, 'description', path, false);
  const eventType = ctx.oneOf<EventType>(r, 'event_type', EVENT_TYPES, path);
  const severity = ctx.oneOf<Severity>(r, 'severity', SEVERITIES, path);
  const confidence = r.confidence;
  if (typeof confidence !== 'number' || !(confidence >= 0 && confidence <= 1))
    ctx.add([...path, 'confidence'], '"confidence" must be a number from 0 to 1');
  const tags: string[] = [];
  if (r.tags !== undefined) {
    if (!Array.isArray(r.tags)) ctx.add([...path, 'tags'], '"tags" must be a list of strings');
    else
      r.tags.forEach((t, i) =>
        typeof t === 'string' && t !== ''
          ? tags.push(t)
          : ctx.add([...path, 'tags', i], 'a tag must be a non-empty string'),
      );
  }
  if (r.action !== undefined && r.action !== null && r.action !== 'block')
    ctx.add(
      [...path, 'action'],
      '"action" may only be "block" (promote the detection to enforcement)',
    );
  if (r.generate !== undefined && typeof r.generate !== 'boolean')
    ctx.add([...path, 'generate'], '"generate" must be true or false');
  ctx.nodes = 0;
  const match =
    r.match === undefined
      ? (ctx.add([...path, 'match'], '"match" is required'), undefined)
      : eventType === undefined
        ? undefined
        : validateNode(ctx, r.match, [...path, 'match'], eventType, 0);
  const tests = validateTests(ctx, r.tests, [...path, 'tests']);
  const source = validateRuleSource(ctx, r.source, [...path, 'source']);
  if (ctx.issues.length > before || match === undefined) return undefined;
  const rule: IrRule = {
    id,
    title,
    description,
    event_type: eventType!,
    severity: severity!,
    confidence: confidence as number,
    tags,
    action: r.action === 'block' ? 'block' : null,
    match,
    tests,
  };
  if (source !== undefined) rule.source = source;
  if (r.generate === false) rule.generate = false;
  // The line is only needed for later issues; finding it may need the slow full YAML parse, so it
  // is computed on first read (non-enumerable, so serialising a rule does not trigger it).
  const doc = ctx.doc;
  if (doc !== undefined) {
    let cached: number | undefined | null = null;
    Object.defineProperty(rule, 'line', {
      enumerable: false,
      get: () => (cached === null ? (cached = doc.lineOf(path)) : cached),
    });
  }
  return rule;
}

function validateTests(ctx: Ctx, v: unknown, path: PathSegment[]): IrTestCase[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    ctx.add(path, '"tests" must be a list');
    return [];
  }
  if (v.length > MAX_TESTS_PER_RULE)
    ctx.add(path, `a rule holds at most ${MAX_TESTS_PER_RULE} tests`);
  const out: IrTestCase[] = [];
  v.slice(0, MAX_TESTS_PER_RULE).forEach((t, i) => {
    const p = [...path, i];
    if (!isObj(t)) return ctx.add(p, 'a test must be a mapping with name, event and expect');
    ctx.keys(t, TEST_KEYS, p, 'test');
    const name = ctx.str(t, 'name', p, true);
    const expect = ctx.oneOf(t, 'expect', ['match', 'no_match'] as const, p);
    if (!isObj(t.event)) ctx.add([...p, 'event'], '"event" must be an event object');
    else if (expect !== undefined) out.push({ name, event: t.event, expect });
  });
  return out;
}

function validateNode(
  ctx: Ctx,
  v: unknown,
  path: PathSegment[],
  eventType: EventType,
  depth: number,
): MatchNode | undefined {
  if (++ctx.nodes > MAX_MATCH_NODES) {
    if (ctx.nodes === MAX_MATCH_NODES + 1)
      ctx.add(path, `a match tree has at most ${MAX_MATCH_NODES} nodes`);
    return undefined;
  }
  if (depth > MAX_MATCH_DEPTH) {
    ctx.add(path, `a match tree nests at most ${MAX_MATCH_DEPTH} levels`);
    return undefined;
  }
  if (!isObj(v)) {
    ctx.add(path, 'a match node must be a mapping: all, any, not, or a predicate with "field"');
    return undefined;
  }
  const combinators = ['all', 'any', 'not'].filter((k) => k in v);
  if (combinators.length > 0) {
    if (combinators.length > 1 || Object.keys(v).length > 1) {
      ctx.add(
        path,
        `a combinator node holds exactly one of all, any, not (found: ${Object.keys(v).join(', ')})`,
      );
      return undefined;
    }
    const kind = combinators[0] as 'all' | 'any' | 'not';
    const body = v[kind];
    if (kind === 'not') {
      const child = validateNode(ctx, body, [...path, 'not'], eventType, depth + 1);
      return child === undefined ? undefined : { kind: 'not', child };
    }
    if (!Array.isArray(body) || body.length === 0) {
      ctx.add([...path, kind], `"${kind}" must be a non-empty list of match nodes`);
      return undefined;
    }
    const children = body.map((c, i) =>
      validateNode(ctx, c, [...path, kind, i], eventType, depth + 1),
    );
    return children.every((c) => c !== undefined)
      ? { kind, children: children as MatchNode[] }
      : undefined;
  }
  return validatePredicate(ctx, v, path, eventType);
}

function validatePredicate(
  ctx: Ctx,
  v: Obj,
  path: PathSegment[],
  eventType: EventType,
): MatchNode | undefined {
  const before = ctx.issues.length;
  ctx.keys(v, PREDICATE_KEYS, path, 'predicate');
  const fieldPath = ctx.str(v, 'field', path, true);
  const ops = PREDICATE_OPS.filter((op) => op in v);
  if (ops.length !== 1) {
    ctx.add(
      path,
      ops.length === 0
        ? `a predicate needs one operator: ${PREDICATE_OPS.join(', ')}`
        : `a predicate has exactly one operator (found: ${ops.join(', ')})`,
    );
    return undefined;
  }
  const op = ops[0] as PredicateOp;
  const ci = v.case_insensitive ?? false;
  if (typeof ci !== 'boolean')
    ctx.add([...path, 'case_insensitive'], '"case_insensitive" must be true or false');
  if (fieldPath === '') return undefined;
  const res = resolveField(fieldPath, eventType);
  if (!res.ok) {
    ctx.add([...path, 'field'], res.message);
    return undefined;
  }
  const values = checkValues(ctx, res.field, op, v[op], [...path, op]);
  if (ci === true && (op === 'exists' || op === 'cidr' || valueKind(res.field) !== 'string')) {
    ctx.add(
      [...path, 'case_insensitive'],
      `"case_insensitive" applies to string operators on string fields, not ${op} on ${fieldPath}`,
    );
  }
  if (ctx.issues.length > before || values === undefined) return undefined;
  return {
    kind: 'predicate',
    predicate: { field: fieldPath, op, values, case_insensitive: ci === true },
  };
}

/** The JS type of the values a field compares against. */
function valueKind(field: ResolvedField): 'string' | 'number' | 'boolean' {
  if (field.kind !== 'field') return 'string';
  return field.type === 'int' ? 'number' : field.type === 'bool' ? 'boolean' : 'string';
}

function checkValues(
  ctx: Ctx,
  field: ResolvedField,
  op: PredicateOp,
  raw: unknown,
  path: PathSegment[],
): PredicateValue[] | undefined {
  const kind = valueKind(field);
  if (op === 'exists') {
    if (typeof raw !== 'boolean') ctx.add(path, '"exists" takes true or false');
    else if (kind !== 'string') ctx.add(path, `"exists" applies to headers and string fields`);
    return typeof raw === 'boolean' ? [raw] : undefined;
  }
  if (!Array.isArray(raw)) {
    ctx.add(path, `"${op}" takes a list of values`);
    return undefined;
  }
  if (raw.length === 0) {
    ctx.add(path, `"${op}" has an empty value list`);
    return undefined;
  }
  if (raw.length > MAX_VALUES_PER_PREDICATE) {
    ctx.add(path, `"${op}" takes at most ${MAX_VALUES_PER_PREDICATE} values`);
    return undefined;
  }
  if (op !== 'equals' && kind !== 'string') {
    ctx.add(
      path,
      `"${op}" applies to string fields; ${field.kind === 'field' ? field.path : ''} is ${kind === 'number' ? 'an int' : 'a bool'}`,
    );
    return undefined;
  }
  raw.forEach((val, i) => {
    if (typeof val !== kind || (kind === 'number' && !Number.isSafeInteger(val))) {
      ctx.add(
        [...path, i],
        `values of "${op}" on this field must be ${kind === 'number' ? 'integers' : `${kind}s`}`,
      );
      return;
    }
    if (typeof val === 'string' && val.length > MAX_VALUE_LENGTH)
      ctx.add([...path, i], `value is longer than ${MAX_VALUE_LENGTH} characters`);
    else if (op === 'matches') {
      const problem = regexProblem(val as string);
      if (problem !== undefined)
        ctx.add([...path, i], `${problem.message} (at offset ${problem.offset} of the pattern)`);
    } else if (op === 'cidr') {
      const c = parseCidr(val as string);
      if (!c.ok) ctx.add([...path, i], c.message);
    }
  });
  return raw as PredicateValue[];
}
