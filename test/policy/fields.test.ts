import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/events/types.js';
import { celContext, CEL_ENV } from '../../src/policy/celenv.js';
import { compileCondition } from '../../src/policy/compile.js';
import { EVENT_ROOTS, FIELDS, ROOT_EVENT_TYPE, rootOf } from '../../src/policy/fields.js';
import { project } from '../../src/policy/projection.js';
import { event } from './helpers.js';

/** One fully populated event per type: every field of the table has a value on one of them. */
const FULL = {
  'http.request': event({
    common: { event_type: 'http.request', vm_id: 'vm', profile_id: 'p', process_name: 'curl' },
    http: {
      request: {
        method: 'GET',
        host: 'h',
        path: '/p',
        query: 'q=1',
        headers: { A: 'b' },
        body: { text: 't', content_type: 'text/plain' },
      },
    },
  }),
  'http.response': event({
    common: { event_type: 'http.response' },
    http: { request: { host: 'h' }, response: { status: 200, headers: { A: 'b' }, body: 'x' } },
  }),
  'dns.request': event({
    common: { event_type: 'dns.request' },
    dns: { request: { qname: 'a.b', qtype: 'TXT' } },
  }),
  'dns.response': event({
    common: { event_type: 'dns.response' },
    dns: {
      request: { qname: 'x.a.b', qtype: 'A' },
      response: {
        rcode: 'NOERROR',
        cached: true,
        answers: [{ name: 'x.a.b', type: 'A', data: '192.0.2.1', ttl: 60 }],
      },
    },
  }),
  'mcp.request': event({
    common: { event_type: 'mcp.request' },
    mcp: { request: { server_id: 's', tool_name: 't', arguments: { a: 1 }, request_id: '1' } },
  }),
  'mcp.response': event({
    common: { event_type: 'mcp.response' },
    mcp: { response: { server_id: 's', tool_name: 't', is_error: true, content_text: 'c' } },
  }),
  'process.exec': event({
    common: { event_type: 'process.exec' },
    process: { activity: { executable: '/bin/ls', argv: ['/bin/ls'] } },
  }),
} as const;

function valueAt(obj: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

describe('the field contract', () => {
  it('is sorted and has no duplicates', () => {
    const paths = FIELDS.map((f) => f.path);
    expect(paths).toEqual([...paths].sort());
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('covers every leaf of every event type, and nothing else', () => {
    const leaves = new Set<string>();
    const walk = (prefix: string, o: unknown) => {
      if (
        typeof o !== 'object' ||
        o === null ||
        Array.isArray(o) ||
        prefix.endsWith('headers') ||
        prefix.endsWith('arguments')
      ) {
        leaves.add(prefix);
        return;
      }
      for (const [k, v] of Object.entries(o)) walk(prefix === '' ? k : `${prefix}.${k}`, v);
    };
    for (const e of Object.values(FULL)) walk('', e);
    expect([...leaves].sort()).toEqual(FIELDS.map((f) => f.path));
  });

  it.each(FIELDS.map((f) => [f.path, f.type] as const))(
    '%s (%s) resolves on a fully populated event in both evaluators',
    (path, type) => {
      const root = rootOf(path)!;
      const eventType = root === 'common' ? 'http.request' : ROOT_EVENT_TYPE[root];
      const e = FULL[eventType];
      const expected = valueAt(e, path);
      expect(expected).not.toBeUndefined();
      const text = type.startsWith('map')
        ? `size(${path}) >= 0`
        : type.startsWith('list')
          ? `size(${path}) >= 0`
          : `${path} == ${path}`;
      const c = compileCondition(text);
      expect(c.ok).toBe(true);
      if (!c.ok) return;
      expect(c.condition.program(project(e))).toBe(true);
      expect(CEL_ENV.parse(text)(celContext(e))).toBe(true);
    },
  );

  it('maps every event type to the roots it carries', () => {
    for (const t of EVENT_TYPES) expect(EVENT_ROOTS[t]).toContain('common');
  });

  it.each([
    [
      'http.request.hots == "x"',
      'unknown field "http.request.hots"; did you mean "http.request.host"?',
    ],
    ['htp.request.host == "x"', 'unknown root "htp"; did you mean "http"?'],
    ['dns.request.name == "x"', 'did you mean "dns.request.qname"?'],
    ['http.request.body.txt.contains("x")', 'did you mean "http.request.body.text"?'],
    ['mcp.request.tool == "x"', 'did you mean "mcp.request.tool_name"?'],
    ['process.activity.args[0] == "sh"', 'did you mean "process.activity.argv"?'],
  ])('refuses %s and names the closest field', (text, message) => {
    const c = compileCondition(text);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.issues[0]!.message).toContain(message);
  });

  it.each([
    ['http.request.host + 1 == 2', 'type error'],
    ['http.request.port == "443"', 'type error'],
    ['http.request.host', 'must be a bool'],
    ['http.request.host.contains(', 'syntax error'],
  ])('refuses %s with a %s', (text, message) => {
    const c = compileCondition(text);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.issues[0]!.message).toContain(message);
  });
});
