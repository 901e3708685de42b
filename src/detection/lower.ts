/**
 * Lowers validated Detection IR rules to CEL text: deterministic (same rule → same text) and fully
 * parenthesised, so precedence never depends on the reader. The text is then compiled by the same
 * compiler as enforcement rules (install.ts). Pure; no I/O; must not evaluate anything.
 *
 *   all  → (a && b)          any → (a || b)           not → (!a)
 *   several values of one predicate → (p(v1) || p(v2))
 *   case_insensitive → one RE2 pattern with (?i) for the predicate's values (Unicode simple case
 *                      folding, src/policy/regex.ts): equals → (?i)^(?:v1|v2)$, contains → (?i)v1|v2,
 *                      startswith → (?i)^(?:…), endswith → (?i)(?:…)$, matches → (?i)(?:p1)|(?:p2);
 *                      a list longer than one pattern may be is split into several patterns
 *   header predicates → (H.exists() && H.value()…), H = http.request.header("name"), so `not`
 *                      over an absent header is true; `exists` → H.exists()
 *   list<string> fields (argv) → "v" in f / f.exists(x, x.contains("v"))
 *   MCP arguments (`mcp.request.arguments.<key>`) → ("k" in A && A["k"]…); a non-string value is
 *                      an evaluation error (recorded; fails closed only for `action: block` rules)
 *   cidr → an exact anchored regex over dotted-decimal IPv4 text (cidr.ts)
 */
import { cidrRegex } from './cidr.js';
import { contractPath, resolveField, type ResolvedField } from './fields.js';
import { caseInsensitive, MAX_REGEX_LENGTH, quoteRegex } from '../policy/regex.js';
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

function literal(v: PredicateValue): string {
  return typeof v === 'string' ? celString(v) : String(v);
}

const METHOD: Record<string, string> = { contains: 'contains', startswith: 'startsWith', endswith: 'endsWith', matches: 'matches' };

/** `subject op value` for a string subject expression (case-sensitive predicates). */
function stringTest(subject: string, p: IrPredicate, value: string): string {
  switch (p.op) {
    case 'equals':
      return `(${subject} == ${celString(value)})`;
    case 'matches':
      return `${subject}.matches(${celString(value)})`;
    case 'cidr':
      return `${subject}.matches(${celString(cidrRegex(value))})`;
    default:
      return `${subject}.${METHOD[p.op]!}(${celString(value)})`;
  }
}

/** The RE2 alternative a case-insensitive value stands for, before anchoring. */
function foldedAlternative(op: IrPredicate['op'], value: string): string {
  return op === 'matches' ? `(?:${value})` : quoteRegex(value);
}

function anchored(op: IrPredicate['op'], alternatives: string[]): string {
  const body = alternatives.length === 1 && op !== 'matches' ? alternatives[0]! : `(?:${alternatives.join('|')})`;
  switch (op) {
    case 'equals':
      return `^${body}$`;
    case 'startswith':
      return `^${body}`;
    case 'endswith':
      return `${body}$`;
    default:
      return body;
  }
}

/**
 * Case-insensitive predicates: the values become as few `(?i)` RE2 patterns as fit
 * MAX_REGEX_LENGTH, so a list of any length is a handful of `matches` calls.
 */
function foldedTests(subject: string, p: IrPredicate): string[] {
  const out: string[] = [];
  let group: string[] = [];
  const flush = () => {
    if (group.length > 0) out.push(`${subject}.matches(${celString(caseInsensitive(anchored(p.op, group)))})`);
    group = [];
  };
  for (const v of p.values as string[]) {
    const alt = foldedAlternative(p.op, v);
    if (group.length > 0 && caseInsensitive(anchored(p.op, [...group, alt])).length > MAX_REGEX_LENGTH) flush();
    group.push(alt);
  }
  flush();
  return out;
}

/** The tests of a string predicate over `subject`, one per value or per folded pattern. */
function stringTests(subject: string, p: IrPredicate): string[] {
  if (p.case_insensitive === true && p.op !== 'cidr') return foldedTests(subject, p);
  return p.values.map((v) => stringTest(subject, p, v as string));
}

function anyOf(parts: string[]): string {
  return parts.length === 1 ? parts[0]! : `(${parts.join(' || ')})`;
}

function lowerPredicate(p: IrPredicate, field: ResolvedField): string {
  if (field.kind === 'header') {
    const h = `${field.root}.header(${celString(field.name)})`;
    if (p.op === 'exists') return p.values[0] === true ? `${h}.exists()` : `(!${h}.exists())`;
    return `(${h}.exists() && ${anyOf(stringTests(`${h}.value()`, p))})`;
  }
  if (field.kind === 'argument') {
    const k = celString(field.key);
    const has = `(${k} in mcp.request.arguments)`;
    if (p.op === 'exists') return p.values[0] === true ? has : `(!${has})`;
    return `(${has} && ${anyOf(stringTests(`mcp.request.arguments[${k}]`, p))})`;
  }
  const f = field.path;
  if (field.type === 'list<string>') {
    if (p.op === 'exists') return p.values[0] === true ? `(size(${f}) > 0)` : `(size(${f}) == 0)`;
    if (p.op === 'equals' && !p.case_insensitive) return anyOf(p.values.map((v) => `(${celString(v as string)} in ${f})`));
    return `${f}.exists(x, ${anyOf(stringTests('x', p))})`;
  }
  if (field.type === 'string') {
    if (p.op === 'exists') return p.values[0] === true ? `(${f} != "")` : `(${f} == "")`;
    return anyOf(stringTests(f, p));
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
