/**
 * tools/list filtering: which tools would a rule *always* deny, so agents never see them. Pure
 * static analysis over rule definitions (docs/mcp.md §tools/list); it does not decide anything at
 * request time — every tools/call is still decided by the engine.
 *
 * A tool `t` of server `s` is hidden when an enabled, enforce-mode `block` rule R has a condition
 * that is exactly `mcp.request.tool_name == "t"`, optionally `&& mcp.request.server_id == "s"`
 * (either operand order, any parentheses), AND no enabled enforce-mode non-block rule sorted before
 * R (priority, id) could match that call first. An earlier rule "could match" unless it is itself
 * of the simple form naming a different tool/server, or it never runs on `mcp.request` events.
 * Only decisive rules count (enforce mode; detection rules only when they block), as in the engine.
 * Under a deny-by-default profile a tool is also hidden when no allow/ask rule could match its call.
 */
import type { RuleInfo } from '../../policy/types.js';

export type RuleView = Pick<RuleInfo, 'id' | 'condition' | 'action' | 'mode' | 'enabled' | 'priority' | 'families'> &
  Partial<Pick<RuleInfo, 'kind'>>;

/** Whether a matching rule can decide the verdict (the engine's rule: detections only report). */
const decisive = (r: RuleView) => r.enabled && r.mode === 'enforce' && ((r.kind ?? 'enforcement') === 'enforcement' || r.action === 'block');

/** A condition of the simple form: tool name, and server id when the rule names one. */
export interface ToolMatcher {
  tool: string;
  server: string | null;
}

type Token = { t: 'ident' | 'str' | 'eq' | 'and' | 'lp' | 'rp'; v: string };

function tokenize(src: string): Token[] | null {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      out.push({ t: c === '(' ? 'lp' : 'rp', v: c });
      i++;
    } else if (src.startsWith('==', i)) {
      out.push({ t: 'eq', v: '==' });
      i += 2;
    } else if (src.startsWith('&&', i)) {
      out.push({ t: 'and', v: '&&' });
      i += 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let v = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') return null; // escapes: not worth being clever; treat as not simple
        v += src[j];
        j++;
      }
      if (j >= src.length) return null;
      out.push({ t: 'str', v });
      i = j + 1;
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i));
      if (!m) return null;
      out.push({ t: 'ident', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

/** Parses `field == "lit"` terms joined by `&&`; parentheses are allowed around anything. */
function equalities(tokens: Token[]): Map<string, string> | null {
  const toks = tokens.filter((t) => t.t !== 'lp' && t.t !== 'rp');
  // Parentheses only group here (no || exists in a simple condition), so they must balance.
  let depth = 0;
  for (const t of tokens) {
    if (t.t === 'lp') depth++;
    if (t.t === 'rp' && --depth < 0) return null;
  }
  if (depth !== 0) return null;
  const eqs = new Map<string, string>();
  for (let i = 0; i < toks.length; i += 4) {
    const [a, op, b, sep] = [toks[i], toks[i + 1], toks[i + 2], toks[i + 3]];
    if (!a || !op || !b || op.t !== 'eq') return null;
    if (sep !== undefined && sep.t !== 'and') return null;
    if (sep !== undefined && i + 4 >= toks.length) return null;
    const field = a.t === 'ident' && b.t === 'str' ? a.v : b.t === 'ident' && a.t === 'str' ? b.v : null;
    const lit = a.t === 'str' ? a.v : b.v;
    if (field === null || eqs.has(field)) return null;
    eqs.set(field, lit);
  }
  return eqs;
}

/** The simple-form matcher of a condition, or null when the condition is anything else. */
export function toolMatcher(condition: string): ToolMatcher | null {
  const tokens = tokenize(condition);
  if (!tokens || tokens.length === 0) return null;
  const eqs = equalities(tokens);
  if (!eqs) return null;
  const tool = eqs.get('mcp.request.tool_name');
  if (tool === undefined) return null;
  const server = eqs.get('mcp.request.server_id') ?? null;
  if (eqs.size !== (server === null ? 1 : 2)) return null;
  return { tool, server };
}

const byOrder = (a: RuleView, b: RuleView) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Precomputed analysis of one rule set; `isHidden` is a map lookup plus a short scan. */
export class HiddenTools {
  private readonly blockers: { index: number; m: ToolMatcher }[] = [];
  private readonly earlier: { index: number; m: ToolMatcher | null }[] = [];

  /** `defaultAction` "block" (a deny-by-default profile) also hides tools no allow rule can reach. */
  constructor(
    rules: readonly RuleView[],
    private readonly defaultAction: 'allow' | 'block' = 'allow',
  ) {
    const active = rules.filter(decisive).sort(byOrder);
    active.forEach((r, index) => {
      const m = toolMatcher(r.condition);
      if (r.action === 'block') {
        if (m) this.blockers.push({ index, m });
        return;
      }
      // `families` holds the event types the rule runs on (e.g. "mcp.request"); empty = every type.
      const readsMcp = r.families.length === 0 || r.families.some((f) => f === 'mcp' || f === 'mcp.request');
      if (readsMcp) this.earlier.push({ index, m });
    });
  }

  /** The id-free answer: would every `tools/call` of `tool` on `server` be blocked? */
  isHidden(server: string, tool: string): boolean {
    const blocker = this.blockers.find((b) => b.m.tool === tool && (b.m.server === null || b.m.server === server));
    // Without a blocker the verdict is the default action unless an allow/ask rule matches first.
    if (!blocker && this.defaultAction !== 'block') return false;
    const limit = blocker ? blocker.index : Number.POSITIVE_INFINITY;
    for (const e of this.earlier) {
      if (e.index > limit) break;
      if (e.m === null) return false;
      if (e.m.tool === tool && (e.m.server === null || e.m.server === server)) return false;
    }
    return true;
  }
}
