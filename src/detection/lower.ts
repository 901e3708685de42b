/**
 * Lowers validated Detection IR rules to CEL text: deterministic (same rule → same text) and fully
 * parenthesised, so precedence never depends on the reader. The text is then compiled by the same
 * compiler as enforcement rules (install.ts). Pure; no I/O; must not evaluate anything.
 *
 *   all  → (a && b)          any → (a || b)           not → (!a)
 *   several values of one predicate → (p(v1) || p(v2))
 *   case_insensitive → field.lowerAscii() against ASCII-lower-cased values; `matches` folds the
 *                      pattern instead (`a` → `[aA]`), since JS RegExp has no inline (?i)
 *   header predicates → (H.exists() && H.value()…), H = http.request.header("name"), so `not`
 *                      over an absent header is true; `exists` → H.exists()
 *   list<string> fields (argv) → "v" in f / f.exists(x, x.contains("v"))
 *   MCP arguments (`mcp.request.arguments.<key>`) → ("k" in A && A["k"]…); a non-string value is
 *                      an evaluation error (recorded; fails closed only for `action: block` rules)
 *   cidr → an exact anchored regex over dotted-decimal IPv4 text (cidr.ts)
 */
import { cidrRegex } from './cidr.js';
import { contractPath, resolveField, type ResolvedField } from './fields.js';
import { foldCaseRegex } from '../policy/regex-safety.js';
import type { IrPredicate, IrRule, MatchNode, PredicateValue } from './types.js';

export interface LoweredRule {
  rule: IrRule;
  condition: string;
  /** Contract fields the rule reads, sorted (reported on findings). */
  matched_fields: string[];
}

/** A CEL string literal: JSON string escapes (\" \\ \n \uXXXX) are valid CEL escapes. */
export function celString(value: string): string {
  return JSON.stringify(value);
}

/** ASCII-only lower-casing, matching CEL's lowerAscii(). */
export function lowerAscii(value: string): string {
  return value.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function literal(v: PredicateValue): string {
  return typeof v === 'string' ? celString(v) : String(v);
}

const METHOD: Record<string, string> = { contains: 'contains', startswith: 'startsWith', endswith: 'endsWith', matches: 'matches' };

/** `subject op value` for a string subject expression. */
function stringTest(subject: string, p: IrPredicate, value: string): string {
  const v = p.case_insensitive && p.op !== 'matches' ? lowerAscii(value) : value;
  const s = p.case_insensitive && p.op !== 'matches' ? `${subject}.lowerAscii()` : subject;
  switch (p.op) {
    case 'equals':
      return `(${s} == ${celString(v)})`;
    case 'matches':
      return `${subject}.matches(${celString(p.case_insensitive ? foldCaseRegex(value) : value)})`;
    case 'cidr':
      return `${subject}.matches(${celString(cidrRegex(value))})`;
    default:
      return `${s}.${METHOD[p.op]!}(${celString(v)})`;
  }
}

function anyOf(parts: string[]): string {
  return parts.length === 1 ? parts[0]! : `(${parts.join(' || ')})`;
}

function lowerPredicate(p: IrPredicate, field: ResolvedField): string {
  if (field.kind === 'header') {
    const h = `${field.root}.header(${celString(field.name)})`;
    if (p.op === 'exists') return p.values[0] === true ? `${h}.exists()` : `(!${h}.exists())`;
    return `(${h}.exists() && ${anyOf(p.values.map((v) => stringTest(`${h}.value()`, p, v as string)))})`;
  }
  if (field.kind === 'argument') {
    const k = celString(field.key);
    const has = `(${k} in mcp.request.arguments)`;
    if (p.op === 'exists') return p.values[0] === true ? has : `(!${has})`;
    return `(${has} && ${anyOf(p.values.map((v) => stringTest(`mcp.request.arguments[${k}]`, p, v as string)))})`;
  }
  const f = field.path;
  if (field.type === 'list<string>') {
    if (p.op === 'exists') return p.values[0] === true ? `(size(${f}) > 0)` : `(size(${f}) == 0)`;
    if (p.op === 'equals' && !p.case_insensitive) return anyOf(p.values.map((v) => `(${celString(v as string)} in ${f})`));
    return `${f}.exists(x, ${anyOf(p.values.map((v) => stringTest('x', p, v as string)))})`;
  }
  if (field.type === 'string') {
    if (p.op === 'exists') return p.values[0] === true ? `(${f} != "")` : `(${f} == "")`;
    return anyOf(p.values.map((v) => stringTest(f, p, v as string)));
  }
  return anyOf(p.values.map((v) => `(${f} == ${literal(v)})`));
}

function lowerNode(node: MatchNode, rule: IrRule, fields: Set<string>): string {
  switch (node.kind) {
    case 'all':
      return `(${node.children.map((c) => lowerNode(c, rule, fields)).join(' && ')})`;
    case 'any':
      return `(${node.children.map((c) => lowerNode(c, rule, fields)).join(' || ')})`;
    case 'not':
      return `(!${lowerNode(node.child, rule, fields)})`;
    case 'predicate': {
      const res = resolveField(node.predicate.field, rule.event_type);
      if (!res.ok) throw new Error(`lowering an unvalidated rule "${rule.id}": ${res.message}`);
      fields.add(contractPath(res.field));
      return lowerPredicate(node.predicate, res.field);
    }
  }
}

/** The root that identifies each event type (an http.response event also carries http.request). */
const OWN_ROOT: Record<IrRule['event_type'], string> = {
  'http.request': 'http.request',
  'http.response': 'http.response',
  'dns.request': 'dns.request',
  'mcp.request': 'mcp.request',
  'mcp.response': 'mcp.response',
  'process.exec': 'process.activity',
};

/**
 * Lowers one validated rule. The compiler runs a condition on the event types of the roots it reads,
 * so a rule that reads none of its own event type's root (only `common`, or an http.response rule
 * that reads only the request) gets an explicit event-type test, plus a read of the response status
 * for http.response, to run on exactly its declared event type.
 */
export function lowerRule(rule: IrRule): LoweredRule {
  const fields = new Set<string>();
  const body = lowerNode(rule.match, rule, fields);
  const own = OWN_ROOT[rule.event_type];
  if ([...fields].some((f) => f.startsWith(`${own}.`))) return { rule, condition: body, matched_fields: [...fields].sort() };
  const guard = `(common.event_type == ${celString(rule.event_type)})`;
  const probe = rule.event_type === 'http.response' ? ' && (http.response.status >= 0)' : '';
  return { rule, condition: `(${guard}${probe} && ${body})`, matched_fields: [...fields].sort() };
}
