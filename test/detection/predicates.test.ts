import { describe, expect, it } from 'vitest';
import { detectionEngine } from '../../src/detection/install.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { event, http, load, packWith } from './helpers.js';

function fires(match: unknown, ev: SecurityEvent, rule: Record<string, unknown> = {}): boolean {
  const { engine } = detectionEngine([load(packWith(match, rule))]);
  const d = engine.decide(ev);
  expect(d.errors).toEqual([]);
  return d.findings.some((f) => f.rule_id === 'r1');
}

const req = http({
  method: 'POST',
  host: 'api.example.com',
  path: '/v1/Upload',
  query: 'a=1',
  headers: { 'User-Agent': 'curl/8.0', Authorization: 'Bearer x' },
  body: 'Token=Secret',
});

describe('every predicate on a string field', () => {
  it.each([
    ['equals', { field: 'http.request.host', equals: ['api.example.com'] }, true],
    ['equals (no)', { field: 'http.request.host', equals: ['example.com'] }, false],
    [
      'equals any of several values',
      { field: 'http.request.host', equals: ['a.com', 'api.example.com'] },
      true,
    ],
    ['contains', { field: 'http.request.path', contains: ['Upl'] }, true],
    [
      'contains is case-sensitive by default',
      { field: 'http.request.path', contains: ['upl'] },
      false,
    ],
    ['startswith', { field: 'http.request.path', startswith: ['/v1/'] }, true],
    ['startswith (no)', { field: 'http.request.path', startswith: ['/v2/'] }, false],
    ['endswith', { field: 'http.request.host', endswith: ['.example.com'] }, true],
    ['endswith (no)', { field: 'http.request.host', endswith: ['.example.org'] }, false],
    ['matches', { field: 'http.request.path', matches: ['^/v[0-9]+/'] }, true],
    ['matches (no)', { field: 'http.request.path', matches: ['^/admin'] }, false],
    ['exists true on a non-empty field', { field: 'http.request.query', exists: true }, true],
    ['exists false on a non-empty field', { field: 'http.request.query', exists: false }, false],
    [
      'cidr (no: a host name is not an address)',
      { field: 'http.request.host', cidr: ['10.0.0.0/8'] },
      false,
    ],
  ])('%s', (_name, match, expected) => {
    expect(fires(match, req)).toBe(expected);
  });

  it('cidr matches an address host inside the block and not outside', () => {
    const m = { field: 'http.request.host', cidr: ['169.254.0.0/16', '10.0.0.0/8'] };
    expect(fires(m, http({ host: '169.254.169.254' }))).toBe(true);
    expect(fires(m, http({ host: '10.2.3.4' }))).toBe(true);
    expect(fires(m, http({ host: '11.2.3.4' }))).toBe(false);
  });
});

describe('case-insensitive predicates', () => {
  it.each([
    ['equals', { field: 'http.request.method', equals: ['post'], case_insensitive: true }, true],
    [
      'contains',
      { field: 'http.request.body.text', contains: ['token=secret'], case_insensitive: true },
      true,
    ],
    [
      'startswith',
      { field: 'http.request.path', startswith: ['/V1/UP'], case_insensitive: true },
      true,
    ],
    [
      'endswith',
      { field: 'http.request.path', endswith: ['/upload'], case_insensitive: true },
      true,
    ],
    [
      'matches',
      { field: 'http.request.body.text', matches: ['^token=s[a-z]+$'], case_insensitive: true },
      true,
    ],
    [
      'matches (no)',
      { field: 'http.request.body.text', matches: ['^token=s[0-9]+$'], case_insensitive: true },
      false,
    ],
    [
      'header value',
      { field: 'http.request.headers.user-agent', startswith: ['CURL/'], case_insensitive: true },
      true,
    ],
  ])('%s ignores ASCII case', (_name, match, expected) => {
    expect(fires(match, req)).toBe(expected);
  });

  const unicode = http({
    path: '/obst/Äpfel-und-Birnen',
    headers: { 'user-agent': 'Σ-agent ΚΕΛΒΙΝ' },
    body: 'size=10\u212Am',
  });
  it.each([
    [
      'contains "ÄPFEL" matches "Äpfel"',
      { field: 'http.request.path', contains: ['ÄPFEL'], case_insensitive: true },
      true,
    ],
    [
      'contains "äpfel" matches "Äpfel"',
      { field: 'http.request.path', contains: ['äpfel'], case_insensitive: true },
      true,
    ],
    [
      'startswith in Greek',
      { field: 'http.request.headers.user-agent', startswith: ['σ-AGENT'], case_insensitive: true },
      true,
    ],
    [
      'endswith in Greek',
      { field: 'http.request.headers.user-agent', endswith: ['κελβιν'], case_insensitive: true },
      true,
    ],
    [
      'the Kelvin sign folds to k',
      { field: 'http.request.body.text', contains: ['10km'], case_insensitive: true },
      true,
    ],
    [
      'equals is still whole-value',
      { field: 'http.request.path', equals: ['/OBST/ÄPFEL'], case_insensitive: true },
      false,
    ],
    [
      'matches with (?i) folding',
      { field: 'http.request.path', matches: ['ÄPFEL-und-birnen$'], case_insensitive: true },
      true,
    ],
    [
      'metacharacters in values stay literal',
      { field: 'http.request.path', contains: ['ÄPFEL.UND'], case_insensitive: true },
      false,
    ],
  ])('%s (Unicode simple case folding)', (_name, match, expected) => {
    expect(fires(match, unicode)).toBe(expected);
  });

  it('lowers a case-insensitive list to one set membership over the folded subject', () => {
    const values = Array.from({ length: 60 }, (_, i) => `Agent-${i}-${'x'.repeat(20)}`);
    const m = { field: 'http.request.headers.user-agent', equals: values, case_insensitive: true };
    const rule = load(packWith(m)).rules[0]!;
    expect(rule.condition).toContain('.value().foldCase() in ["agent-0-');
    expect(rule.condition).not.toContain('.matches(');
    expect(fires(m, http({ headers: { 'user-agent': `agent-59-${'X'.repeat(20)}` } }))).toBe(true);
    expect(fires(m, http({ headers: { 'user-agent': `agent-60-${'X'.repeat(20)}` } }))).toBe(false);
  });
});

describe('headers, ints, bools and lists', () => {
  it.each([
    ['header exists', { field: 'http.request.headers.authorization', exists: true }, true],
    ['absent header exists', { field: 'http.request.headers.cookie', exists: true }, false],
    ['absent header exists: false', { field: 'http.request.headers.cookie', exists: false }, true],
    ['header contains', { field: 'http.request.headers.user-agent', contains: ['curl'] }, true],
    [
      'absent header contains is false',
      { field: 'http.request.headers.cookie', contains: ['x'] },
      false,
    ],
    [
      'not over an absent header is true',
      { not: { field: 'http.request.headers.cookie', contains: ['x'] } },
      true,
    ],
    ['int equals', { field: 'http.request.port', equals: [8443, 443] }, true],
    ['int equals (no)', { field: 'http.request.port', equals: [80] }, false],
    ['bool equals', { field: 'http.request.body.truncated', equals: [false] }, true],
  ])('%s', (_name, match, expected) => {
    expect(fires(match, req)).toBe(expected);
  });

  it('reads list fields element-wise on process.exec events', () => {
    const ex = event({
      common: { event_type: 'process.exec' },
      process: {
        activity: {
          executable: '/bin/sh',
          command: 'sh -c id',
          argv: ['sh', '-c', 'ID'],
          cwd: '/',
        },
      },
    });
    const rule = { event_type: 'process.exec' };
    expect(fires({ field: 'process.activity.argv', equals: ['-c'] }, ex, rule)).toBe(true);
    expect(
      fires({ field: 'process.activity.argv', equals: ['id'], case_insensitive: true }, ex, rule),
    ).toBe(true);
    expect(fires({ field: 'process.activity.argv', startswith: ['I'] }, ex, rule)).toBe(true);
    expect(fires({ field: 'process.activity.argv', contains: ['zz'] }, ex, rule)).toBe(false);
  });

  it('reads one MCP tool argument by name; absent is false, and not over it is true', () => {
    const call = event({
      common: { event_type: 'mcp.request' },
      mcp: {
        request: {
          method: 'tools/call',
          tool_name: 'read_file',
          arguments: { path: '/etc/passwd', 'a.b': 'X' },
        },
      },
    });
    const rule = { event_type: 'mcp.request' };
    expect(fires({ field: 'mcp.request.arguments.path', startswith: ['/etc/'] }, call, rule)).toBe(
      true,
    );
    expect(
      fires(
        { field: 'mcp.request.arguments.a.b', equals: ['x'], case_insensitive: true },
        call,
        rule,
      ),
    ).toBe(true);
    expect(fires({ field: 'mcp.request.arguments.url', contains: ['x'] }, call, rule)).toBe(false);
    expect(
      fires({ not: { field: 'mcp.request.arguments.url', contains: ['x'] } }, call, rule),
    ).toBe(true);
    expect(fires({ field: 'mcp.request.arguments.path', exists: true }, call, rule)).toBe(true);
    expect(fires({ field: 'mcp.request.arguments.url', exists: false }, call, rule)).toBe(true);
  });

  it('runs a rule only on its declared event type, even one that reads only common fields', () => {
    const dns = event({
      common: { event_type: 'dns.request' },
      dns: { request: { qname: 'x.example', qtype: 'A' } },
    });
    const onlyCommon = { field: 'common.session_id', equals: ['s-test'] };
    expect(fires(onlyCommon, req)).toBe(true);
    expect(fires(onlyCommon, dns)).toBe(false);
    expect(fires(onlyCommon, dns, { event_type: 'dns.request' })).toBe(true);
  });

  it('an http.response rule reading only request fields fires on responses, not requests', () => {
    const res = event({
      common: { event_type: 'http.response' },
      http: { request: { host: 'a.com' }, response: { status: 200 } },
    });
    const rule = { event_type: 'http.response' };
    const m = { field: 'http.request.host', equals: ['a.com'] };
    expect(fires(m, res, rule)).toBe(true);
    expect(fires(m, http({ host: 'a.com' }), rule)).toBe(false);
  });
});

describe('combinators and lowering precedence', () => {
  const A = { field: 'http.request.host', equals: ['a.com'] };
  const B = { field: 'http.request.path', equals: ['/b'] };
  const C = { field: 'http.request.method', equals: ['POST'] };
  // all[ C, not(any[A, B]) ]  ≡  C ∧ ¬(A ∨ B)
  const tree = { all: [C, { not: { any: [A, B] } }] };
  const cases = [];
  for (const a of [false, true])
    for (const b of [false, true]) for (const c of [false, true]) cases.push([a, b, c] as const);

  it.each(cases)('A=%s B=%s C=%s follows the truth table of C && !(A || B)', (a, b, c) => {
    const ev = http({
      host: a ? 'a.com' : 'z.com',
      path: b ? '/b' : '/z',
      method: c ? 'POST' : 'GET',
    });
    expect(fires(tree, ev)).toBe(c && !(a || b));
  });

  it('lowers deterministically and fully parenthesised', () => {
    const text = load(packWith(tree)).rules[0]!.condition;
    expect(text).toBe(
      '((http.request.method == "POST") && (!((http.request.host == "a.com") || (http.request.path == "/b"))))',
    );
    expect(load(packWith(tree)).rules[0]!.condition).toBe(text);
  });

  it('any with one true child fires, all with one false child does not', () => {
    expect(fires({ any: [A, C] }, http({ method: 'POST' }))).toBe(true);
    expect(fires({ all: [A, C] }, http({ method: 'POST' }))).toBe(false);
  });

  it('escapes quotes and backslashes in values', () => {
    const m = { field: 'http.request.body.text', contains: ['a"b\\c'] };
    expect(fires(m, http({ body: 'xx a"b\\c yy' }))).toBe(true);
    expect(fires(m, http({ body: 'a"bc' }))).toBe(false);
  });
});
