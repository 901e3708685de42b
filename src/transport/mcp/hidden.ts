/**
 * tools/list filtering: which tools would *always* be denied, so agents never see them. Pure static
 * analysis over rule definitions (docs/mcp.md §tools/list); it decides nothing at request time —
 * every tools/call is still decided by the engine.
 *
 * A "simple" condition is a conjunction (`&&`, any parentheses) of equality terms over
 * `mcp.request.tool_name`, `mcp.request.server_id` and `mcp.request.method`: `field == "lit"`,
 * `"lit" == field` or `field in ["a", "b"]`. Its matcher says exactly which tools/calls it matches.
 *
 * Tool `t` of server `s` is hidden when a decisive `block` rule R with a simple condition matches a
 * tools/call of (s, t), and no decisive non-block rule sorted before R (priority, id) could match
 * that call. A rule "could match" unless its simple matcher excludes the call or it never runs on
 * `mcp.request` events. Decisive = enforce mode, and detection rules only when they block (as in
 * the engine). Under a deny-by-default profile a tool is also hidden when no non-block decisive rule
 * could match its call (the default would deny it).
 */
import type { RuleInfo } from '../../policy/types.js';

export type RuleView = Pick<
  RuleInfo,
  'id' | 'condition' | 'action' | 'mode' | 'enabled' | 'priority' | 'families'
> &
  Partial<Pick<RuleInfo, 'kind'>>;

const decisive = (r: RuleView) =>
  r.enabled &&
  r.mode === 'enforce' &&
  ((r.kind ?? 'enforcement') === 'enforcement' || r.action === 'block');

const FIELDS = {
  'mcp.request.tool_name': 'tools',
  'mcp.request.server_id': 'servers',
  'mcp.request.method': 'methods',
} as const;

/** The calls a simple condition matches; null for a dimension means "any". */
export interface ToolMatcher {
  tools: ReadonlySet<string> | null;
  servers: ReadonlySet<string> | null;
  methods: ReadonlySet<string> | null;
}

type Token = {
  t: 'ident' | 'str' | 'eq' | 'and' | 'in' | 'lb' | 'rb' | 'comma' | 'lp' | 'rp';
  v: string;
};

const PUNCT: Record<string, Token['t']> = {
  '(': 'lp',
  ')': 'rp',
  '[': 'lb',
  ']': 'rb',
  ',': 'comma',
};

function tokenize(src: string): Token[] | null {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) i++;
    else if (PUNCT[c] !== undefined) {
      out.push({ t: PUNCT[c]!, v: c });
      i++;
    } else if (src.startsWith('==', i) || src.startsWith('&&', i)) {
      out.push({ t: src[i] === '=' ? 'eq' : 'and', v: src.slice(i, i + 2) });
      i += 2;
    } else if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      const v = end === -1 ? '' : src.slice(i + 1, end);
      if (end === -1 || v.includes('\\')) return null; // escapes: treat as not simple
      out.push({ t: 'str', v });
      i = end + 1;
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i));
      if (!m) return null;
      out.push({ t: m[0] === 'in' ? 'in' : 'ident', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

/** The simple-form matcher of a condition, or null when the condition is anything else. */
export function toolMatcher(condition: string): ToolMatcher | null {
  const all = tokenize(condition);
  if (!all || all.length === 0) return null;
  let depth = 0;
  for (const t of all) {
    if (t.t === 'lp') depth++;
    if (t.t === 'rp' && --depth < 0) return null;
  }
  if (depth !== 0) return null; // with only && there is nothing for parentheses to change
  const toks = all.filter((t) => t.t !== 'lp' && t.t !== 'rp');
  const sets: {
    tools: Set<string> | null;
    servers: Set<string> | null;
    methods: Set<string> | null;
  } = { tools: null, servers: null, methods: null };
  let i = 0;
  for (;;) {
    let field: string;
    let values: string[];
    const a = toks[i];
    const b = toks[i + 1];
    if (a?.t === 'ident' && b?.t === 'eq' && toks[i + 2]?.t === 'str')
      [field, values, i] = [a.v, [toks[i + 2]!.v], i + 3];
    else if (a?.t === 'str' && b?.t === 'eq' && toks[i + 2]?.t === 'ident')
      [field, values, i] = [toks[i + 2]!.v, [a.v], i + 3];
    else if (a?.t === 'ident' && b?.t === 'in' && toks[i + 2]?.t === 'lb') {
      field = a.v;
      values = [];
      i += 3;
      while (toks[i]?.t === 'str') {
        values.push(toks[i]!.v);
        i++;
        if (toks[i]?.t === 'comma') i++;
        else break;
      }
      if (toks[i]?.t !== 'rb' || values.length === 0) return null;
      i++;
    } else return null;
    const key = FIELDS[field as keyof typeof FIELDS];
    if (key === undefined || sets[key] !== null) return null;
    sets[key] = new Set(values);
    if (i === toks.length) break;
    if (toks[i]?.t !== 'and') return null;
    i++;
  }
  return sets;
}

/** Does the matcher match a tools/call of `tool` on `server`? */
export function matchesCall(m: ToolMatcher, server: string, tool: string): boolean {
  return (
    (m.methods === null || m.methods.has('tools/call')) &&
    (m.servers === null || m.servers.has(server)) &&
    (m.tools === null || m.tools.has(tool))
  );
}

const byOrder = (a: RuleView, b: RuleView) =>
  a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Precomputed analysis of one rule set; `isHidden` scans the few decisive rules once. */
export class HiddenTools {
  private readonly blockers: { index: number; m: ToolMatcher }[] = [];
  private readonly others: { index: number; m: ToolMatcher | null }[] = [];

  /** `defaultAction` "block" (a deny-by-default profile) also hides tools no allow rule can reach. */
  constructor(
    rules: readonly RuleView[],
    private readonly defaultAction: 'allow' | 'block' = 'allow',
  ) {
    rules
      .filter(decisive)
      .sort(byOrder)
      .forEach((r, index) => {
        const m = toolMatcher(r.condition);
        if (r.action === 'block') {
          if (m) this.blockers.push({ index, m });
          return;
        }
        // `families` holds the event types the rule runs on (e.g. "mcp.request"); empty = every type.
        if (r.families.length === 0 || r.families.some((f) => f === 'mcp' || f === 'mcp.request'))
          this.others.push({ index, m });
      });
  }

  /** Would every `tools/call` of `tool` on `server` be blocked? */
  isHidden(server: string, tool: string): boolean {
    const blocker = this.blockers.find((b) => matchesCall(b.m, server, tool));
    if (!blocker && this.defaultAction !== 'block') return false;
    const limit = blocker ? blocker.index : Number.POSITIVE_INFINITY;
    for (const o of this.others) {
      if (o.index > limit) break;
      if (o.m === null || matchesCall(o.m, server, tool)) return false;
    }
    return true;
  }
}
