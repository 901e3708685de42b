/**
 * Lowers validated Detection IR rules to CEL text: deterministic (same rule → same text) and fully
 * parenthesised, so precedence never depends on the reader. The text is then compiled by the same
 * compiler as enforcement rules (install.ts). Pure; no I/O; must not evaluate anything.
 *
 *   all  → (a && b)          any → (a || b)           not → (!a)
 *   (more than 8 children → a balanced tree of parenthesised groups, so the AST stays shallow)
 *   equals → (f == "v") or (f in ["v1", "v2"]) (a hashed set)
 *   contains/startswith/endswith → f.contains("v") or f.containsAny(["v1", "v2"]) (one pass,
 *                      src/policy/multimatch.ts), likewise startsWithAny / endsWithAny
 *   case_insensitive literals → the same over f.foldCase() with folded values (Unicode simple case
 *                      folding as RE2's (?i) applies it, src/policy/casefold.ts)
 *   matches → (f.matches("p1") || f.matches("p2")); case-insensitive → (?i)(?:p1|p2) patterns, a
 *                      list longer than one pattern may be split into several
 *   header predicates → (H.exists() && H.value()…), H = http.request.header("name"), so `not`
 *                      over an absent header is true; `exists` → H.exists()
 *   list<string> fields (argv) → "v" in f / f.exists(x, x.contains("v"))
 *   MCP arguments (`mcp.request.arguments.<key>`) → ("k" in A && A["k"]…); a non-string value is
 *                      an evaluation error (recorded; fails closed only for `action: block` rules)
 *   cidr → an exact anchored regex over dotted-decimal IPv4 text (cidr.ts)
 */
import { cidrRegex } from './cidr.js';
import { contractPath, resolveField, type ResolvedField } from './fields.js';
import { caseInsensitive, MAX_REGEX_LENGTH } from '../policy/regex.js';
import { foldCaseList } from '../policy/casefold.js';
import type { IrPredicate, IrRule, MatchNode, PredicateValue } from './types.js';

export interface LoweredRule {
  rule: IrRule;
  condition: string;
  /**
   * The condition with every long string list replaced by a one-element placeholder list, and the
   * lists: the compiler parses and type-checks this short text and puts the lists back into the AST
   * (compile.ts, CompileOptions.lists), since cel-js parsing a 1,000-element literal costs ~2 ms.
   */
  skeleton: { text: string; lists: Map<string, string[]> };
  /** Contract fields the rule reads, sorted (reported on findings). */
  matched_fields: string[];
}

/** A CEL string literal: JSON string escapes (\" \\ \n \uXXXX) are valid CEL escapes. */
export function celString(value: string): string {
  // Printable ASCII without a quote or backslash reads the same in CEL and JSON: no escaping pass
  // (bench/detection.ts, "lower and compile 100 rules of 1,000 values").
  return PLAIN_ASCII.test(value) ? `"${value}"` : JSON.stringify(value);
}
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** CEL string literals joined by ", ": plain ASCII lists in one join, without a string per value. */
function celStrings(values: readonly string[]): string {
  for (const v of values) if (!PLAIN_ASCII.test(v)) return values.map(celString).join(', ');
  return values.length === 0 ? '' : `"${values.join('", "')}"`;
}

function literal(v: PredicateValue): string {
  return typeof v === 'string' ? celString(v) : String(v);
}

/** A CEL list literal of strings. */
function celList(values: readonly string[]): string {
  if (sink !== undefined && values.length >= SKELETON_MIN_LIST) {
    const token = `${LIST_PLACEHOLDER}${sink.size}`;
    sink.set(token, [...values]);
    return `[${celString(token)}]`;
  }
  return `[${celStrings(values)}]`;
}

/** Lists this long or longer are carried beside the skeleton text rather than parsed (bench/detection.ts). */
const SKELETON_MIN_LIST = 16;
/** Placeholder strings: a per-process nonce, so no pack value can collide with one. */
const LIST_PLACEHOLDER = `\u0000celgate-list-${Math.random().toString(36).slice(2)}-`;
/** Lists collected while one rule is lowered (lowering is synchronous). */
let sink: Map<string, string[]> | undefined;

const ONE: Record<string, string> = {
  contains: 'contains',
  startswith: 'startsWith',
  endswith: 'endsWith',
};
const MANY: Record<string, string> = {
  contains: 'containsAny',
  startswith: 'startsWithAny',
  endswith: 'endsWithAny',
};

/**
 * The literal operators (equals, contains, startswith, endswith) as one test over the subject,
 * whatever the number of values: `==` / `in [list]` (a hashed set in both evaluators), and
 * `contains`/`containsAny([list])` and friends (one Aho–Corasick or trie pass, multimatch.ts).
 * Case-insensitive predicates fold the subject with `foldCase()` and the values here (casefold.ts),
 * which equates exactly the strings RE2's `(?i)` does.
 */
function literalTest(subject: string, p: IrPredicate): string {
  const ci = p.case_insensitive === true;
  const s = ci ? `${subject}.foldCase()` : subject;
  // Repeats (also those folding makes) stay: the set and the matchers absorb them at no cost.
  const values = ci ? foldCaseList(p.values as string[]) : (p.values as string[]);
  if (p.op === 'equals')
    return values.length === 1
      ? `(${s} == ${celString(values[0]!)})`
      : `(${s} in ${celList(values)})`;
  return values.length === 1
    ? `${s}.${ONE[p.op]!}(${celString(values[0]!)})`
    : `${s}.${MANY[p.op]!}(${celList(values)})`;
}

/** The RE2 alternative a case-insensitive `matches` value stands for. */
function foldedAlternative(value: string): string {
  return `(?:${value})`;
}

/**
 * Case-insensitive `matches`: the patterns become as few `(?i)(?:p1|p2)` RE2 patterns as fit
 * MAX_REGEX_LENGTH, so a list of any length is a handful of `matches` calls.
 */
function foldedRegexTests(subject: string, p: IrPredicate): string[] {
  const out: string[] = [];
  let group: string[] = [];
  const pattern = (alts: string[]) => caseInsensitive(`(?:${alts.join('|')})`);
  const flush = () => {
    if (group.length > 0) out.push(`${subject}.matches(${celString(pattern(group))})`);
    group = [];
  };
  for (const v of p.values as string[]) {
    const alt = foldedAlternative(v);
    if (group.length > 0 && pattern([...group, alt]).length > MAX_REGEX_LENGTH) flush();
    group.push(alt);
  }
  flush();
  return out;
}

/** The tests of a string predicate over `subject`; the predicate holds when any does. */
function stringTests(subject: string, p: IrPredicate): string[] {
  switch (p.op) {
    case 'matches':
      if (p.case_insensitive === true) return foldedRegexTests(subject, p);
      return (p.values as string[]).map((v) => `${subject}.matches(${celString(v)})`);
    case 'cidr':
      return (p.values as string[]).map((v) => `${subject}.matches(${celString(cidrRegex(v))})`);
    default:
      return [literalTest(subject, p)];
  }
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
    if (p.op === 'equals' && !p.case_insensitive && p.values.length === 1)
      return `(${celString(p.values[0] as string)} in ${f})`;
    return `${f}.exists(x, ${anyOf(stringTests('x', p))})`;
  }
  if (field.type === 'string') {
    if (p.op === 'exists') return p.values[0] === true ? `(${f} != "")` : `(${f} == "")`;
    return anyOf(stringTests(f, p));
  }
  return p.values.length === 1
    ? `(${f} == ${literal(p.values[0]!)})`
    : `(${f} in [${p.values.map(literal).join(', ')}])`;
}

/** Children joined by `op`; a wide node becomes a balanced tree of groups, so the CEL AST stays shallow. */
const MAX_FLAT_CHILDREN = 8;
function balanced(parts: string[], op: string): string {
  if (parts.length <= MAX_FLAT_CHILDREN) return `(${parts.join(op)})`;
  const groups: string[] = [];
  const size = Math.ceil(parts.length / MAX_FLAT_CHILDREN);
  for (let i = 0; i < parts.length; i += size) {
    const g = parts.slice(i, i + size);
    groups.push(g.length === 1 ? g[0]! : balanced(g, op));
  }
  return balanced(groups, op);
}

function lowerNode(node: MatchNode, rule: IrRule, fields: Set<string>): string {
  switch (node.kind) {
    case 'all':
      return balanced(
        node.children.map((c) => lowerNode(c, rule, fields)),
        ' && ',
      );
    case 'any':
      return balanced(
        node.children.map((c) => lowerNode(c, rule, fields)),
        ' || ',
      );
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

/** The root that identifies each event type (a response event also carries its request's root). */
const OWN_ROOT: Record<IrRule['event_type'], string> = {
  'http.request': 'http.request',
  'http.response': 'http.response',
  'dns.request': 'dns.request',
  'dns.response': 'dns.response',
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
  const lists = new Map<string, string[]>();
  sink = lists;
  let body: string;
  try {
    body = lowerNode(rule.match, rule, fields);
  } finally {
    sink = undefined;
  }
  const own = OWN_ROOT[rule.event_type];
  let skeleton = body;
  if (![...fields].some((f) => f.startsWith(`${own}.`))) {
    const guard = `(common.event_type == ${celString(rule.event_type)})`;
    // A response rule that reads only its request still has to run on response events: a read of
    // a response field that always holds puts the response root among the roots the rule reads.
    const probe =
      rule.event_type === 'http.response'
        ? ' && (http.response.status >= 0)'
        : rule.event_type === 'dns.response'
          ? ' && (dns.response.rcode != "")'
          : '';
    skeleton = `(${guard}${probe} && ${body})`;
  }
  let condition = skeleton;
  for (const [token, values] of lists)
    condition = condition.replace(`[${celString(token)}]`, () => `[${celStrings(values)}]`);
  return {
    rule,
    condition,
    skeleton: { text: skeleton, lists },
    matched_fields: [...fields].sort(),
  };
}
