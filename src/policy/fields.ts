/**
 * The CEL vocabulary, declared once (DESIGN §4): every field a rule may read, its CEL type, and the
 * event types that carry it. The compiler, the projection, Detection IR and the docs all read this
 * table. Pure data; no I/O.
 */
import type { EventType } from '../events/types.js';

export type FieldType =
  | 'string'
  | 'int'
  | 'bool'
  | 'list<string>'
  | 'list<map<string, dyn>>'
  | 'map<string, string>'
  | 'map<string, dyn>';

export interface FieldDef {
  /** Dotted path as a rule writes it, e.g. `http.request.host`. */
  path: string;
  type: FieldType;
}

/** Sorted by path; `test/policy/fields.test.ts` pins order and completeness. */
export const FIELDS: readonly FieldDef[] = [
  { path: 'common.event_id', type: 'string' },
  { path: 'common.event_type', type: 'string' },
  { path: 'common.family', type: 'string' },
  { path: 'common.process_name', type: 'string' },
  { path: 'common.profile_id', type: 'string' },
  { path: 'common.session_id', type: 'string' },
  { path: 'common.timestamp_ms', type: 'int' },
  { path: 'common.vm_id', type: 'string' },
  { path: 'dns.request.qclass', type: 'string' },
  { path: 'dns.request.qname', type: 'string' },
  { path: 'dns.request.qtype', type: 'string' },
  { path: 'dns.request.transport', type: 'string' },
  { path: 'dns.response.answer_data', type: 'list<string>' },
  { path: 'dns.response.answer_types', type: 'list<string>' },
  { path: 'dns.response.answers', type: 'list<map<string, dyn>>' },
  { path: 'dns.response.cached', type: 'bool' },
  { path: 'dns.response.parent_domain', type: 'string' },
  { path: 'dns.response.qclass', type: 'string' },
  { path: 'dns.response.qname', type: 'string' },
  { path: 'dns.response.qtype', type: 'string' },
  { path: 'dns.response.rcode', type: 'string' },
  { path: 'dns.response.transport', type: 'string' },
  { path: 'http.request.body.content_type', type: 'string' },
  { path: 'http.request.body.size', type: 'int' },
  { path: 'http.request.body.state', type: 'string' },
  { path: 'http.request.body.text', type: 'string' },
  { path: 'http.request.body.truncated', type: 'bool' },
  { path: 'http.request.headers', type: 'map<string, string>' },
  { path: 'http.request.host', type: 'string' },
  { path: 'http.request.method', type: 'string' },
  { path: 'http.request.path', type: 'string' },
  { path: 'http.request.port', type: 'int' },
  { path: 'http.request.query', type: 'string' },
  { path: 'http.request.raw_target', type: 'string' },
  { path: 'http.request.scheme', type: 'string' },
  { path: 'http.request.secrets', type: 'list<string>' },
  { path: 'http.request.url', type: 'string' },
  { path: 'http.response.body.content_type', type: 'string' },
  { path: 'http.response.body.size', type: 'int' },
  { path: 'http.response.body.state', type: 'string' },
  { path: 'http.response.body.text', type: 'string' },
  { path: 'http.response.body.truncated', type: 'bool' },
  { path: 'http.response.headers', type: 'map<string, string>' },
  { path: 'http.response.status', type: 'int' },
  { path: 'mcp.request.arguments', type: 'map<string, dyn>' },
  { path: 'mcp.request.method', type: 'string' },
  { path: 'mcp.request.request_id', type: 'string' },
  { path: 'mcp.request.server_id', type: 'string' },
  { path: 'mcp.request.tool_name', type: 'string' },
  { path: 'mcp.response.content_text', type: 'string' },
  { path: 'mcp.response.is_error', type: 'bool' },
  { path: 'mcp.response.method', type: 'string' },
  { path: 'mcp.response.server_id', type: 'string' },
  { path: 'mcp.response.tool_name', type: 'string' },
  { path: 'process.activity.argv', type: 'list<string>' },
  { path: 'process.activity.command', type: 'string' },
  { path: 'process.activity.command_class', type: 'string' },
  { path: 'process.activity.cwd', type: 'string' },
  { path: 'process.activity.executable', type: 'string' },
  { path: 'process.activity.operation', type: 'string' },
  { path: 'process.activity.parent_command', type: 'string' },
  { path: 'process.activity.parent_executable', type: 'string' },
];

/** Member functions: `http.request.header(name)` and `http.response.header(name)` return a Header
 * with `.exists()` and `.value()`; lookups are case-insensitive. */
export const HEADER_FUNCTION_ROOTS = ['http.request', 'http.response'] as const;

/** A root is the two-segment prefix of a path (`http.request`), or `common`. */
export const ROOTS = [
  'common',
  'dns.request',
  'dns.response',
  'http.request',
  'http.response',
  'mcp.request',
  'mcp.response',
  'process.activity',
] as const;
export type Root = (typeof ROOTS)[number];

/** The event type a root belongs to. A rule runs on the event types of the roots it reads; a rule
 * that reads only `common` runs on every event. */
export const ROOT_EVENT_TYPE: Readonly<Record<Exclude<Root, 'common'>, EventType>> = {
  'dns.request': 'dns.request',
  'dns.response': 'dns.response',
  'http.request': 'http.request',
  'http.response': 'http.response',
  'mcp.request': 'mcp.request',
  'mcp.response': 'mcp.response',
  'process.activity': 'process.exec',
};

/** Which roots each event type carries (a response event carries its request too). */
export const EVENT_ROOTS: Readonly<Record<EventType, readonly Root[]>> = {
  'http.request': ['common', 'http.request'],
  'http.response': ['common', 'http.request', 'http.response'],
  'dns.request': ['common', 'dns.request'],
  'dns.response': ['common', 'dns.request', 'dns.response'],
  'mcp.request': ['common', 'mcp.request'],
  'mcp.response': ['common', 'mcp.response'],
  'process.exec': ['common', 'process.activity'],
};

export const FIELD_BY_PATH: ReadonlyMap<string, FieldDef> = new Map(FIELDS.map((f) => [f.path, f]));

/** Every valid prefix (`http`, `http.request`, `http.request.body`) → its child names. */
export const CHILDREN: ReadonlyMap<string, readonly string[]> = (() => {
  const out = new Map<string, Set<string>>();
  const add = (parent: string, child: string) => {
    let s = out.get(parent);
    if (s === undefined) out.set(parent, (s = new Set()));
    s.add(child);
  };
  for (const { path } of FIELDS) {
    const parts = path.split('.');
    add('', parts[0]!);
    for (let i = 1; i < parts.length; i++) add(parts.slice(0, i).join('.'), parts[i]!);
  }
  for (const root of HEADER_FUNCTION_ROOTS) add(root, 'header()');
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
})();

const ROOT_SET: ReadonlySet<string> = new Set(ROOTS);

export function rootOf(path: string): Root | undefined {
  if (path === 'common' || path.startsWith('common.')) return 'common';
  const first = path.indexOf('.');
  if (first < 0) return undefined;
  const second = path.indexOf('.', first + 1);
  const two = second < 0 ? path : path.slice(0, second);
  return ROOT_SET.has(two) ? (two as Root) : undefined;
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** The closest valid child of `parent` to `name`, or of any full path to `parent.name`. */
export function closestField(parent: string, name: string): string | undefined {
  const siblings = CHILDREN.get(parent) ?? [];
  const full = parent === '' ? name : `${parent}.${name}`;
  const candidates = [
    ...siblings.map((s) => (parent === '' ? s : `${parent}.${s}`)),
    ...FIELDS.map((f) => f.path).filter((p) => p.endsWith(`.${name}`)),
  ];
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const leaf = c.slice(c.lastIndexOf('.') + 1);
    const prefixed =
      leaf !== name && (leaf.startsWith(name) || name.startsWith(leaf)) && c.startsWith(parent);
    const score = prefixed ? 0.5 : c.endsWith(`.${name}`) && c !== full ? 1 : distance(full, c);
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best !== undefined && bestScore <= Math.max(3, Math.floor(full.length / 3))
    ? best
    : undefined;
}
