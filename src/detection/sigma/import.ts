/**
 * Sigma rule → Detection IR. Converts the constructs real rules use exactly (see values.ts and
 * condition.ts) through a field mapping, and refuses anything else with the construct named (code
 * E_SIGMA_UNSUPPORTED) — never approximated. The result is validated and compiled like any pack.
 * Pure (text in, pack out); no file I/O.
 */
import { stringify } from 'yaml';
import type { Issue, Validated } from '../../errors.js';
import { SEVERITIES } from '../../events/decision.js';
import { IR_SCHEMA, MAX_SOURCE_LIST, MAX_VALUE_LENGTH, type IrPack } from '../types.js';
import { validatePackValue } from '../validate.js';
import { compilePack } from '../install.js';
import { parseSource } from '../source.js';
import { expandPattern, parseCondition, type Cond } from './condition.js';
import { mappingCovers, responseSide, type SigmaMapping } from './mapping.js';
import { fieldNode, parseModifiers, SigmaRefusal } from './values.js';

export const MAX_SIGMA_BYTES = 256 * 1024;

/** Sigma `status` → IR confidence (documented in docs/detection-ir.md). */
const CONFIDENCE: Record<string, number> = {
  stable: 0.9,
  test: 0.7,
  experimental: 0.5,
  deprecated: 0.3,
  unsupported: 0.3,
};

type Obj = Record<string, unknown>;
type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ImportedRule {
  /** The IR rule object (YAML shape). */
  rule: Raw;
  mapping: SigmaMapping;
  /** Sigma field names the rule uses. */
  fields: string[];
}

export interface SigmaImportIssue extends Issue {
  /** E_SIGMA_UNSUPPORTED for a refused construct, E_IR_INVALID for a malformed rule. */
  code: 'E_SIGMA_UNSUPPORTED' | 'E_IR_INVALID';
}

export type SigmaResult =
  { ok: true; value: ImportedRule } | { ok: false; issues: SigmaImportIssue[] };

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'sigma-rule'
  );
}

/** Converts one Sigma rule text with the first mapping that covers its logsource. */
export function importSigmaRule(
  text: string,
  mappings: readonly SigmaMapping[],
  file?: string,
): SigmaResult {
  const where = file === undefined ? {} : { file };
  const fail = (
    code: SigmaImportIssue['code'],
    path: (string | number)[],
    message: string,
    line?: number,
  ): SigmaResult => ({
    ok: false,
    issues: [
      { ...where, ...(line === undefined ? {} : { line }), path: path.join('.'), message, code },
    ],
  });
  if (text.length > MAX_SIGMA_BYTES)
    return fail('E_IR_INVALID', [], `Sigma rule is larger than ${MAX_SIGMA_BYTES} bytes`);
  if (/^---\s*$/m.test(text.replace(/^---\s*\n/, '')))
    return fail(
      'E_SIGMA_UNSUPPORTED',
      [],
      'unsupported Sigma construct: rule collections (several YAML documents)',
    );
  const parsed = parseSource(text, file);
  if (!parsed.ok)
    return {
      ok: false,
      issues: parsed.issues.map((i) => ({ ...i, code: 'E_IR_INVALID' as const })),
    };
  const { value: doc, lineOf } = parsed.doc;
  const locate = (path: (string | number)[]): number | undefined => {
    for (let n = path.length; n > 0; n--) {
      const line = lineOf(path.slice(0, n), true);
      if (line !== undefined) return line;
    }
    return undefined;
  };
  const refuse = (path: (string | number)[], what: string) =>
    fail(
      'E_SIGMA_UNSUPPORTED',
      path,
      oneLine(`unsupported Sigma construct: ${what}`),
      locate(path),
    );
  if (!isObj(doc)) return fail('E_IR_INVALID', [], 'a Sigma rule must be a YAML mapping');
  if (typeof doc.title !== 'string' || doc.title === '')
    return fail('E_IR_INVALID', ['title'], 'Sigma rule has no title', lineOf(['title']));
  if (doc.correlation !== undefined)
    return refuse(
      ['correlation'],
      'a correlation rule on its own (import it with the rules it names)',
    );
  if (doc.action !== undefined)
    return refuse(['action'], `"action: ${String(doc.action)}" (rule collections)`);
  const logsource = isObj(doc.logsource) ? doc.logsource : {};
  const mapping = mappings.find((m) => mappingCovers(m, logsource));
  if (mapping === undefined) {
    return refuse(
      ['logsource'],
      `logsource ${JSON.stringify(logsource)} is not covered by the mapping${mappings.length === 1 ? ` "${mappings[0]!.id}"` : 's given'}`,
    );
  }
  const detection = doc.detection;
  if (!isObj(detection))
    return fail(
      'E_IR_INVALID',
      ['detection'],
      'Sigma rule has no detection section',
      lineOf(['detection']),
    );
  if (detection.timeframe !== undefined)
    return refuse(['detection', 'timeframe'], '"timeframe" (aggregations over time)');
  const condText = detection.condition;
  if (Array.isArray(condText)) return refuse(['detection', 'condition'], 'a list of conditions');
  if (typeof condText !== 'string')
    return fail(
      'E_IR_INVALID',
      ['detection', 'condition'],
      'detection.condition must be a string',
      lineOf(['detection', 'condition']),
    );
  const cond = parseCondition(condText);
  if (!cond.ok) return refuse(['detection', 'condition'], cond.message);

  const names = Object.keys(detection).filter((k) => k !== 'condition');
  const nodes = new Map<string, Raw>();
  const used = new Set<string>();
  for (const name of names) {
    try {
      nodes.set(name, selectionNode(name, detection[name], mapping, used));
    } catch (err) {
      if (err instanceof SigmaRefusal) return refuse(['detection', name, ...err.at], err.message);
      throw err;
    }
  }
  let match: Raw;
  try {
    match = condNode(cond.cond, nodes, names);
  } catch (err) {
    if (err instanceof SigmaRefusal)
      return fail(
        'E_IR_INVALID',
        ['detection', 'condition'],
        err.message,
        lineOf(['detection', 'condition']),
      );
    throw err;
  }
  const level =
    typeof doc.level === 'string' && (SEVERITIES as readonly string[]).includes(doc.level)
      ? doc.level
      : 'medium';
  const rule: Raw = {
    id:
      typeof doc.id === 'string' && /^[0-9a-f-]{8,64}$/i.test(doc.id)
        ? `sigma-${doc.id.toLowerCase()}`
        : `sigma-${slug(doc.title)}`,
    title: doc.title,
    ...(typeof doc.description === 'string' ? { description: doc.description.trim() } : {}),
    event_type:
      [...used]
        .map((f) => responseSide(mapping.event_type, mapping.fields[f]!.field))
        .find((t) => t !== null) ?? mapping.event_type,
    severity: level,
    confidence: CONFIDENCE[typeof doc.status === 'string' ? doc.status : ''] ?? 0.5,
    tags: Array.isArray(doc.tags)
      ? doc.tags.filter((t): t is string => typeof t === 'string' && t !== '')
      : [],
    match,
    source: provenance(doc),
  };
  // The converted rule must validate and compile on its own (bounds, a pattern the policy compiler
  // refuses, …); when it does not, the Sigma rule is refused at its detection section, in one line.
  const value: ImportedRule = { rule, mapping, fields: [...used].sort() };
  const alone = sigmaPack([value], { id: 'sigma-check' });
  const loaded = alone.ok ? compilePack(alone.value.pack) : alone;
  if (!loaded.ok) {
    const first = loaded.issues[0]!;
    return refuse(
      ['detection'],
      `the converted rule does not fit the Detection IR (${first.path.replace(/^rules\[0\]\.?/, '') || 'rule'}: ${first.message})`,
    );
  }
  return { ok: true, value };
}

/** Refusals are one line of at most MAX_REFUSAL_MESSAGE characters (a file name and line go in front). */
export const MAX_REFUSAL_MESSAGE = 200;
function oneLine(message: string): string {
  const flat = message.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_REFUSAL_MESSAGE ? `${flat.slice(0, MAX_REFUSAL_MESSAGE - 3)}...` : flat;
}

/** Sigma's provenance fields, as far as they are well-formed (a malformed one is dropped, not refused). */
function provenance(doc: Obj): Raw {
  const str = (v: unknown) =>
    typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, MAX_VALUE_LENGTH) : undefined;
  // YAML reads an unquoted 2023-01-31 as a date; Sigma means the text.
  const day = (v: unknown) =>
    v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString().slice(0, 10) : str(v);
  const list = (v: unknown) => {
    const items = (Array.isArray(v) ? v : [v])
      .map(str)
      .filter((x): x is string => x !== undefined)
      .slice(0, MAX_SOURCE_LIST);
    return items.length > 0 ? items : undefined;
  };
  const out: Raw = { kind: 'sigma' };
  const set = (k: string, v: unknown) => {
    if (v !== undefined) out[k] = v;
  };
  set('id', str(doc.id));
  set('author', str(doc.author));
  set('date', day(doc.date));
  set('modified', day(doc.modified));
  set('references', list(doc.references));
  set('falsepositives', list(doc.falsepositives));
  if (isObj(doc.logsource)) {
    const ls = Object.fromEntries(
      Object.entries(doc.logsource).flatMap(([k, v]) =>
        str(v) === undefined ? [] : [[k, str(v)!]],
      ),
    );
    if (Object.keys(ls).length > 0) out.logsource = ls;
  }
  if (Array.isArray(doc.related)) {
    const rel = doc.related
      .flatMap((r) =>
        isObj(r) && str(r.id) !== undefined && str(r.type) !== undefined
          ? [{ id: str(r.id)!, type: str(r.type)! }]
          : [],
      )
      .slice(0, MAX_SOURCE_LIST);
    if (rel.length > 0) out.related = rel;
  }
  return out;
}

function selectionNode(name: string, sel: unknown, mapping: SigmaMapping, used: Set<string>): Raw {
  if (Array.isArray(sel)) {
    if (sel.length === 0) throw new SigmaRefusal(`selection "${name}" is an empty list`);
    if (sel.every((x) => !isObj(x)))
      throw new SigmaRefusal(`keyword selection "${name}" (values without a field name)`);
    if (!sel.every(isObj))
      throw new SigmaRefusal(`selection "${name}" mixes maps and plain values`);
    const maps = sel.map((m, i) => {
      try {
        return mapNode(name, m as Obj, mapping, used);
      } catch (err) {
        if (err instanceof SigmaRefusal) throw new SigmaRefusal(err.message, [i, ...err.at]);
        throw err;
      }
    });
    return maps.length === 1 ? maps[0]! : { any: maps };
  }
  if (isObj(sel)) return mapNode(name, sel, mapping, used);
  throw new SigmaRefusal(
    `selection "${name}" must be a map or a list of maps (keyword searches are not supported)`,
  );
}

function mapNode(name: string, m: Obj, mapping: SigmaMapping, used: Set<string>): Raw {
  const keys = Object.keys(m);
  if (keys.length === 0) throw new SigmaRefusal(`selection "${name}" is an empty map`);
  const parts = keys.map((key) => {
    const [field, ...mods] = key.split('|');
    if (field === undefined || field === '')
      throw new SigmaRefusal(`a field-less modifier "${key}" in "${name}"`);
    const target = mapping.fields[field];
    if (target === undefined)
      throw new SigmaRefusal(`field "${field}" is not in mapping "${mapping.id}"`, [key]);
    used.add(field);
    try {
      return fieldNode(field, target, parseModifiers(mods), m[key]);
    } catch (err) {
      if (err instanceof SigmaRefusal) throw new SigmaRefusal(err.message, [key, ...err.at]);
      throw err;
    }
  });
  return parts.length === 1 ? parts[0]! : { all: parts };
}

function condNode(c: Cond, nodes: ReadonlyMap<string, Raw>, names: readonly string[]): Raw {
  switch (c.kind) {
    case 'ref': {
      const n = nodes.get(c.name);
      if (n === undefined)
        throw new SigmaRefusal(`condition names "${c.name}", which is not a selection`);
      return n;
    }
    case 'and':
      return { all: c.items.map((i) => condNode(i, nodes, names)) };
    case 'or':
      return { any: c.items.map((i) => condNode(i, nodes, names)) };
    case 'not':
      return { not: condNode(c.item, nodes, names) };
    case 'of': {
      const chosen = expandPattern(c.pattern, names);
      if (chosen.length === 0)
        throw new SigmaRefusal(
          `"${c.quantifier === 'all' ? 'all' : '1'} of ${c.pattern}" matches no selection`,
        );
      const items = chosen.map((n) => nodes.get(n)!);
      return items.length === 1 ? items[0]! : { [c.quantifier === 'all' ? 'all' : 'any']: items };
    }
  }
}

export interface SigmaPackOptions {
  id: string;
  version?: string;
  owner?: string;
  description?: string;
}

/** Assembles imported rules into one IR pack and validates it. */
export function sigmaPack(
  rules: readonly ImportedRule[],
  options: SigmaPackOptions,
  correlations: readonly Raw[] = [],
): Validated<{ pack: IrPack; yaml: string }> {
  const fieldMapping: Record<string, string> = {};
  for (const r of rules) {
    for (const k of r.fields) {
      const v = r.mapping.fields[k]!;
      fieldMapping[k] = v.transform === null ? v.field : `${v.field} (${v.transform})`;
    }
  }
  const raw = {
    schema: IR_SCHEMA,
    id: options.id,
    version: options.version ?? '1',
    status: 'active',
    owner: options.owner ?? 'sigma-import',
    description:
      options.description ??
      `Imported from Sigma (${rules.length} rule${rules.length === 1 ? '' : 's'}).`,
    source: { kind: 'sigma', field_mapping: fieldMapping },
    rules: rules.map((r) => r.rule),
    ...(correlations.length === 0 ? {} : { correlations }),
  };
  const v = validatePackValue(raw);
  if (!v.ok) return v;
  return { ok: true, value: { pack: v.value, yaml: stringify(raw, { lineWidth: 0 }) } };
}
