/**
 * Sigma files with several YAML documents (`---`): detection rules converted one by one (import.ts)
 * and correlation rules (`correlation:` with type, rules by name or id, group-by, timespan,
 * condition) converted to the IR's `correlations:`. Group-by and counted fields are Sigma names
 * mapped through the mapping of every rule the correlation rests on, which must agree. Refused by
 * name, never approximated: aliases, value_sum / value_avg / value_percentile, upper-bound or neq
 * conditions, references to rules outside the file or that were refused. Pure; no file I/O.
 */
import { parseAllDocuments } from 'yaml';
import { SEVERITIES } from '../../events/decision.js';
import { CORRELATION_OPS, CORRELATION_TYPES } from '../types.js';
import { importSigmaRule, sigmaPack, type ImportedRule, type SigmaImportIssue } from './import.js';
import type { SigmaMapping } from './mapping.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ImportedCollection {
  rules: ImportedRule[];
  /** IR correlation objects (YAML shape), in file order. */
  correlations: Obj[];
  /** Per-document refusals: the file still yields what converted. */
  issues: SigmaImportIssue[];
}

const CONFIDENCE: Record<string, number> = {
  stable: 0.9,
  test: 0.7,
  experimental: 0.5,
  deprecated: 0.3,
  unsupported: 0.3,
};

function irId(doc: Obj): string {
  if (typeof doc.id === 'string' && /^[0-9a-f-]{8,64}$/i.test(doc.id))
    return `sigma-${doc.id.toLowerCase()}`;
  const title = typeof doc.title === 'string' ? doc.title : 'sigma-correlation';
  return `sigma-${
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'sigma-rule'
  }`;
}

/** Converts every document of a Sigma file; correlations reference rules of the same file. */
export function importSigmaCollection(
  text: string,
  mappings: readonly SigmaMapping[],
  file?: string,
): ImportedCollection {
  const where = file === undefined ? {} : { file };
  const docs = parseAllDocuments(text);
  const out: ImportedCollection = { rules: [], correlations: [], issues: [] };
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length <= 1 && !/^correlation:/m.test(text)) {
    const r = importSigmaRule(text, mappings, file);
    if (r.ok) out.rules.push(r.value);
    else out.issues.push(...r.issues);
    return out;
  }
  /** Sigma name or id → the IR id, and (for detection rules) the mapping it used. */
  const byRef = new Map<string, { id: string; mapping?: SigmaMapping; corr?: Obj }>();
  const refused = new Set<string>();
  const pending: { doc: Obj; line: number }[] = [];
  for (const d of list) {
    const start = d.range[0];
    const docText = text.slice(start, d.range[2]);
    const lineOffset = text.slice(0, start).split('\n').length - 1;
    const value: unknown = d.errors.length > 0 ? undefined : d.toJS();
    if (!isObj(value)) {
      if (value === null || value === undefined) {
        if (d.errors.length === 0) continue; // an empty document (e.g. a trailing ---)
      }
      out.issues.push({
        ...where,
        line: lineOffset + 1,
        path: '',
        code: 'E_IR_INVALID',
        message: d.errors[0]?.message ?? 'a Sigma document must be a YAML mapping',
      });
      continue;
    }
    const refs = [value.name, value.id].filter((x): x is string => typeof x === 'string');
    if (value.correlation !== undefined) {
      pending.push({ doc: value, line: lineOffset + 1 });
      for (const r of refs) byRef.set(r, { id: irId(value), corr: value });
      continue;
    }
    const r = importSigmaRule(docText, mappings, file);
    if (!r.ok) {
      for (const i of r.issues)
        out.issues.push({ ...i, ...(i.line === undefined ? {} : { line: i.line + lineOffset }) });
      for (const ref of refs) refused.add(ref);
      continue;
    }
    out.rules.push(r.value);
    for (const ref of refs)
      byRef.set(ref, { id: r.value.rule.id as string, mapping: r.value.mapping });
  }
  for (const { doc, line } of pending) {
    const c = convert(doc, byRef, refused);
    if (typeof c === 'string')
      out.issues.push({
        ...where,
        line,
        path: 'correlation',
        code: 'E_SIGMA_UNSUPPORTED',
        message: `unsupported Sigma construct: ${c}`.slice(0, 200),
      });
    else {
      // The correlation must validate with the rules it names (fields carried by their events, …).
      const check = sigmaPack(out.rules, { id: 'sigma-check' }, [...out.correlations, c]);
      if (check.ok) out.correlations.push(c);
      else {
        const first =
          check.issues.find((i) => i.path.startsWith('correlations')) ?? check.issues[0]!;
        out.issues.push({
          ...where,
          line,
          path: 'correlation',
          code: 'E_SIGMA_UNSUPPORTED',
          message:
            `unsupported Sigma construct: the converted correlation does not fit the Detection IR (${first.message})`.slice(
              0,
              200,
            ),
        });
      }
    }
  }
  // Sigma `generate` (default false): the rules a correlation names are not stand-alone rules; they
  // feed it without findings of their own, unless some correlation naming them says true.
  const standalone = new Set<string>();
  const named = new Set<string>();
  for (const { doc } of pending) {
    const c = isObj(doc.correlation) ? doc.correlation : {};
    const refs = Array.isArray(c.rules) ? c.rules : [c.rules];
    for (const r of refs) {
      const id = typeof r === 'string' ? byRef.get(r)?.id : undefined;
      if (id === undefined) continue;
      named.add(id);
      if (doc.generate === true) standalone.add(id);
    }
  }
  for (const r of out.rules) {
    const id = r.rule.id as string;
    if (named.has(id) && !standalone.has(id)) r.rule.generate = false;
  }
  return out;
}

/** One correlation document → an IR correlation object, or why it is refused. */
function convert(
  doc: Obj,
  byRef: ReadonlyMap<string, { id: string; mapping?: SigmaMapping; corr?: Obj }>,
  refused: ReadonlySet<string>,
): Obj | string {
  const c = doc.correlation;
  if (!isObj(c)) return 'correlation must be a mapping';
  const type = c.type;
  if (typeof type !== 'string' || !(CORRELATION_TYPES as readonly string[]).includes(type))
    return `correlation type "${String(type)}" (supported: ${CORRELATION_TYPES.join(', ')})`;
  if (c.aliases !== undefined) return 'correlation aliases';
  const rawRules = Array.isArray(c.rules) ? c.rules : typeof c.rules === 'string' ? [c.rules] : [];
  if (rawRules.length === 0) return 'a correlation without rules';
  const rules: string[] = [];
  for (const r of rawRules) {
    if (typeof r !== 'string') return 'rules must be names or ids';
    if (refused.has(r)) return `it references "${r}", which was refused`;
    const target = byRef.get(r);
    if (target === undefined) return `it references "${r}", which is not a rule of this file`;
    rules.push(target.id);
  }
  // The mappings of the detection rules under this correlation (through chained correlations).
  const mappings: SigmaMapping[] = [];
  const seen = new Set<Obj>();
  const collect = (names: unknown[]): string | undefined => {
    for (const n of names) {
      const t = byRef.get(n as string);
      if (t === undefined) return `it references "${String(n)}", which is not a rule of this file`;
      if (t.mapping !== undefined) mappings.push(t.mapping);
      else if (t.corr !== undefined && !seen.has(t.corr)) {
        seen.add(t.corr);
        const inner = isObj(t.corr.correlation) ? t.corr.correlation.rules : [];
        const problem = collect(Array.isArray(inner) ? inner : [inner]);
        if (problem !== undefined) return problem;
      }
    }
    return undefined;
  };
  const problem = collect(rawRules);
  if (problem !== undefined) return problem;
  const mapField = (name: unknown): string => {
    if (typeof name !== 'string' || name === '') throw new Error('field names must be strings');
    let field: string | undefined;
    for (const m of mappings) {
      const t = m.fields[name];
      if (t === undefined) throw new Error(`field "${name}" is not in mapping "${m.id}"`);
      if (t.transform !== null || t.header)
        throw new Error(
          `field "${name}" is derived (${t.transform ?? 'header'}); group by a plain field`,
        );
      if (field !== undefined && field !== t.field)
        throw new Error(`field "${name}" maps to ${field} and ${t.field} in the rules it groups`);
      field = t.field;
    }
    if (field === undefined) throw new Error(`field "${name}" has no mapping`);
    return field;
  };
  const groupRaw = c['group-by'] ?? [];
  const out: Obj = {
    id: irId(doc),
    title: typeof doc.title === 'string' && doc.title !== '' ? doc.title : irId(doc),
    ...(typeof doc.description === 'string' ? { description: doc.description.trim() } : {}),
    type,
    rules,
    timespan: c.timespan,
    severity:
      typeof doc.level === 'string' && (SEVERITIES as readonly string[]).includes(doc.level)
        ? doc.level
        : 'medium',
    confidence: CONFIDENCE[typeof doc.status === 'string' ? doc.status : ''] ?? 0.5,
    tags: Array.isArray(doc.tags) ? doc.tags.filter((t) => typeof t === 'string' && t !== '') : [],
    source: {
      kind: 'sigma',
      ...(typeof doc.id === 'string' && doc.id !== '' ? { id: doc.id } : {}),
      ...(typeof doc.author === 'string' && doc.author !== '' ? { author: doc.author } : {}),
    },
  };
  try {
    out.group_by = (Array.isArray(groupRaw) ? groupRaw : [groupRaw]).map(mapField);
  } catch (err) {
    return `group-by: ${(err as Error).message}`;
  }
  const cond = c.condition;
  if (cond !== undefined) {
    if (!isObj(cond)) return 'condition must be a mapping';
    const condition: Obj = {};
    for (const [k, v] of Object.entries(cond)) {
      if (k === 'field') {
        if (type !== 'value_count') return `"field" in a ${type} condition`;
        const names = Array.isArray(v) ? v : [v];
        if (names.length !== 1) return 'value_count over several fields';
        try {
          out.field = mapField(names[0]);
        } catch (err) {
          return `condition field: ${(err as Error).message}`;
        }
      } else if ((CORRELATION_OPS as readonly string[]).includes(k)) condition[k] = v;
      else
        return `condition "${k}" (a correlation is tested as events arrive: one lower bound, ${CORRELATION_OPS.join(', ')})`;
    }
    if (Object.keys(condition).length !== 1)
      return `a condition needs exactly one of ${CORRELATION_OPS.join(', ')}`;
    out.condition = condition;
  } else if (type === 'event_count' || type === 'value_count') return `${type} without a condition`;
  return out;
}
