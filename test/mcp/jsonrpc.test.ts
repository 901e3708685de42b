/** JSON-RPC payload validation and the tools/list hiding analysis: pure, table-driven. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parsePayload, exceedsDepth, MAX_BATCH } from '../../src/transport/mcp/jsonrpc.js';
import { HiddenTools, toolMatcher } from '../../src/transport/mcp/hidden.js';
import {
  argsPreview,
  argsDigest,
  resultText,
  splitNamespaced,
} from '../../src/transport/mcp/facts.js';

describe('parsePayload', () => {
  it.each([
    ['malformed JSON', '{"jsonrpc":', -32700],
    ['an empty batch', '[]', -32600],
    [
      'a batch over the limit',
      JSON.stringify(
        Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({
          jsonrpc: '2.0',
          id: i,
          method: 'ping',
        })),
      ),
      -32600,
    ],
  ])('answers %s with one error reply', (_n, text, code) => {
    const r = parsePayload(text);
    expect(r.ok).toBe(false);
    expect(r.ok === false && 'reply' in r && r.reply.code).toBe(code);
  });

  it.each([
    ['a number', '42', 'invalid'],
    ['a wrong version', '{"jsonrpc":"1.0","id":1,"method":"ping"}', 'invalid'],
    ['a null id', '{"jsonrpc":"2.0","id":null,"method":"ping"}', 'invalid'],
    ['an object id', '{"jsonrpc":"2.0","id":{},"method":"ping"}', 'invalid'],
    ['string params', '{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}', 'invalid'],
    ['a request', '{"jsonrpc":"2.0","id":"a-1","method":"ping"}', 'request'],
    ['a notification', '{"jsonrpc":"2.0","method":"notifications/initialized"}', 'notification'],
    ['a response', '{"jsonrpc":"2.0","id":3,"result":{}}', 'response'],
  ])('classifies %s', (_n, text, type) => {
    const r = parsePayload(text);
    expect(r.ok && r.messages[0]!.type).toBe(type);
  });

  it('keeps string and number ids exactly', () => {
    const r = parsePayload(
      '[{"jsonrpc":"2.0","id":"x-7","method":"a"},{"jsonrpc":"2.0","id":9007199254740991,"method":"b"}]',
    );
    expect(r.ok && r.messages.map((m) => (m.type === 'request' ? m.id : null))).toEqual([
      'x-7',
      9007199254740991,
    ]);
  });

  it('closes on JSON nested deeper than the bound, ignoring brackets inside strings', () => {
    expect(parsePayload('['.repeat(100) + ']'.repeat(100))).toEqual({
      ok: false,
      fatal: 'json_too_deep',
    });
    expect(exceedsDepth(JSON.stringify({ s: '['.repeat(1000) }))).toBe(false);
    expect(exceedsDepth('"\\"[[[[' + '"')).toBe(false);
  });
});

describe('tools/list hiding analysis', () => {
  const r = (id: string, condition: string, extra: Record<string, unknown> = {}) => ({
    id,
    condition,
    action: 'block' as const,
    mode: 'enforce' as const,
    enabled: true,
    priority: 0,
    families: ['mcp.request'],
    ...extra,
  });

  const norm = (m: ReturnType<typeof toolMatcher>) =>
    m && {
      tools: m.tools && [...m.tools],
      servers: m.servers && [...m.servers],
      methods: m.methods && [...m.methods],
    };
  it.each([
    ['mcp.request.tool_name == "x"', { tools: ['x'], servers: null, methods: null }],
    ['"x" == mcp.request.tool_name', { tools: ['x'], servers: null, methods: null }],
    ['((mcp.request.tool_name == "x"))', { tools: ['x'], servers: null, methods: null }],
    [
      'mcp.request.server_id == "s" && mcp.request.tool_name == \'x\'',
      { tools: ['x'], servers: ['s'], methods: null },
    ],
    ['mcp.request.tool_name in ["a", "b"]', { tools: ['a', 'b'], servers: null, methods: null }],
    [
      'mcp.request.method in ["initialize", "ping"]',
      { tools: null, servers: null, methods: ['initialize', 'ping'] },
    ],
    ['mcp.request.tool_name == "x" || true', null],
    ['mcp.request.tool_name == "x" && mcp.request.arguments.a == "b"', null],
    ['mcp.request.tool_name.startsWith("x")', null],
    ['mcp.request.tool_name == "x" && mcp.request.tool_name == "y"', null],
    ['!(mcp.request.tool_name == "x")', null],
    ['mcp.request.tool_name in []', null],
    ['mcp.request.tool_name == "a\\"b"', null],
  ])('reads %s as %j', (cond, want) => {
    expect(norm(toolMatcher(cond))).toEqual(want);
  });

  it('does not let session-method allow rules un-hide tools', () => {
    const session = r('a-session', 'mcp.request.method in ["initialize", "tools/list"]', {
      action: 'allow',
      priority: -10,
    });
    expect(
      new HiddenTools([session, r('b', 'mcp.request.tool_name == "x"')]).isHidden('s', 'x'),
    ).toBe(true);
    expect(new HiddenTools([session], 'block').isHidden('s', 'x')).toBe(true);
    const callsAllowed = r('a-calls', 'mcp.request.method == "tools/call"', {
      action: 'allow',
      priority: -10,
    });
    expect(
      new HiddenTools([callsAllowed, r('b', 'mcp.request.tool_name == "x"')]).isHidden('s', 'x'),
    ).toBe(false);
  });

  it('hides every tool of a server that a block rule names', () => {
    const h = new HiddenTools([r('b', 'mcp.request.server_id == "evil"')]);
    expect(h.isHidden('evil', 'anything')).toBe(true);
    expect(h.isHidden('good', 'anything')).toBe(false);
  });

  it('hides a tool only when no earlier allow rule could let it through', () => {
    const h1 = new HiddenTools([r('b', 'mcp.request.tool_name == "x"')]);
    expect(h1.isHidden('any', 'x')).toBe(true);
    expect(h1.isHidden('any', 'y')).toBe(false);
    const allowFirst = r('a', 'mcp.request.arguments.safe == true', {
      action: 'allow',
      priority: -1,
    });
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"'), allowFirst]).isHidden('s', 'x'),
    ).toBe(false);
    const allowOther = r('a', 'mcp.request.tool_name == "z"', { action: 'allow', priority: -1 });
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"'), allowOther]).isHidden('s', 'x'),
    ).toBe(true);
    const httpAllow = r('a', 'http.request.host == "x"', {
      action: 'allow',
      priority: -1,
      families: ['http.request'],
    });
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"'), httpAllow]).isHidden('s', 'x'),
    ).toBe(true);
  });

  it('under a deny-by-default profile hides every tool no allow rule can reach', () => {
    const allowEcho = r('a', 'mcp.request.server_id == "s" && mcp.request.tool_name == "echo"', {
      action: 'allow',
    });
    const h = new HiddenTools([allowEcho], 'block');
    expect(h.isHidden('s', 'echo')).toBe(false);
    expect(h.isHidden('s', 'other')).toBe(true);
    expect(h.isHidden('t', 'echo')).toBe(true);
    const allowByArgs = r('b', 'mcp.request.arguments.safe == true', { action: 'allow' });
    expect(new HiddenTools([allowByArgs], 'block').isHidden('s', 'other')).toBe(false);
  });

  it('ignores non-blocking detection rules sorted before the blocker', () => {
    const detection = r('d', 'mcp.request.arguments.x == 1', {
      action: 'allow',
      priority: -5,
      kind: 'detection',
    });
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"'), detection]).isHidden('s', 'x'),
    ).toBe(true);
  });

  it('ignores shadow, disabled and ask rules as blockers, and respects the server', () => {
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"', { mode: 'shadow' })]).isHidden(
        's',
        'x',
      ),
    ).toBe(false);
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"', { enabled: false })]).isHidden(
        's',
        'x',
      ),
    ).toBe(false);
    expect(
      new HiddenTools([r('b', 'mcp.request.tool_name == "x"', { action: 'ask' })]).isHidden(
        's',
        'x',
      ),
    ).toBe(false);
    const scoped = new HiddenTools([
      r('b', 'mcp.request.server_id == "s" && mcp.request.tool_name == "x"'),
    ]);
    expect(scoped.isHidden('s', 'x')).toBe(true);
    expect(scoped.isHidden('t', 'x')).toBe(false);
  });
});

describe('ledger facts', () => {
  it('digests canonical JSON (key order does not matter) and redacts secret-looking keys', () => {
    expect(argsDigest({ a: 1, b: [1, 2] })).toBe(argsDigest({ b: [1, 2], a: 1 }));
    expect(argsDigest({ b: [1, 2], a: 1 })).toBe(
      createHash('sha256').update('{"a":1,"b":[1,2]}').digest('hex').slice(0, 16),
    );
    const p = argsPreview({
      path: '/tmp/x',
      api_key: 'sk-123',
      nested: { password: 'p' },
      long: 'y'.repeat(1000),
    });
    expect(p).not.toContain('sk-123');
    expect(p).not.toContain('"p"');
    expect(p.length).toBeLessThanOrEqual(256);
  });

  it.each([
    [
      'tools/call',
      {
        content: [
          { type: 'text', text: 'a' },
          { type: 'image', data: 'x' },
          { type: 'resource', resource: { uri: 'u', text: 'b' } },
        ],
      },
      'a\nb',
    ],
    [
      'resources/read',
      {
        contents: [
          { uri: 'u', text: 'c' },
          { uri: 'v', blob: 'AA==' },
        ],
      },
      'c',
    ],
    ['prompts/get', { messages: [{ role: 'user', content: { type: 'text', text: 'd' } }] }, 'd'],
    ['tools/call', 'not an object', ''],
    [
      'tools/call',
      { content: [{ type: 'text', text: 'e' }], structuredContent: { key: 'AKIA' } },
      'e\n{"key":"AKIA"}',
    ],
  ])('extracts the text rules see from a %s result', (method, result, text) => {
    expect(resultText(result as never, method)).toBe(text);
  });

  it('splits server__tool at the first separator', () => {
    expect(splitNamespaced('fs__read__file')).toEqual({ server: 'fs', name: 'read__file' });
    expect(splitNamespaced('__x')).toBeNull();
    expect(splitNamespaced('x__')).toBeNull();
  });
});
