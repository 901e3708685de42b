/** The sans-io parts of MCP over HTTPS: the SSE decoder and encoder, body classification, facts. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeSseEvent, MAX_SSE_EVENT_BYTES, SseDecoder } from '../../src/transport/mcp/sse.js';
import {
  classifyBody,
  filterToolsList,
  isForcedRemote,
  mayCarryMcp,
  requestFacts,
  responseFacts,
  sessionKey,
} from '../../src/transport/mcp/remote.js';

describe('SseDecoder', () => {
  it('cuts events at blank lines, keeping each event exactly as received', () => {
    const text =
      'event: endpoint\ndata: /message?sessionId=a\n\n: comment\n\nid: 7\r\ndata: {"a":1}\r\ndata: x\r\n\r\n';
    const { events, error } = new SseDecoder().push(Buffer.from(text));
    expect(error).toBeNull();
    expect(events.map((e) => [e.event, e.data, e.id])).toEqual([
      ['endpoint', '/message?sessionId=a', null],
      ['', null, null],
      ['', '{"a":1}\nx', '7'],
    ]);
    expect(Buffer.concat(events.map((e) => e.raw)).toString()).toBe(text);
  });

  it('gives the same events whatever the chunking (property)', () => {
    const stream =
      'data: {"jsonrpc":"2.0","id":1,"result":{}}\n\nevent: message\r\ndata: two\r\n\r\ndata: three\r\r';
    const whole = new SseDecoder().push(Buffer.from(stream)).events.map((e) => e.raw.toString());
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 8 }),
        (cuts) => {
          const points = [...new Set(cuts)].sort((a, b) => a - b);
          const d = new SseDecoder();
          const got: string[] = [];
          let at = 0;
          for (const p of [...points, stream.length]) {
            got.push(
              ...d.push(Buffer.from(stream.slice(at, p))).events.map((e) => e.raw.toString()),
            );
            at = p;
          }
          expect(got).toEqual(whole);
        },
      ),
    );
  });

  it('refuses an event larger than the bound', () => {
    const d = new SseDecoder();
    expect(d.push(Buffer.alloc(MAX_SSE_EVENT_BYTES + 1, 0x61)).error).toBe('oversize');
  });

  it('encodes multi-line data as one data field per line', () => {
    expect(encodeSseEvent({ event: 'message', id: '3', data: 'a\nb' }).toString()).toBe(
      'event: message\nid: 3\ndata: a\ndata: b\n\n',
    );
  });
});

describe('MCP over HTTPS classification', () => {
  it.each([
    ['plain JSON without "jsonrpc"', '{"a":1}', false, 'opaque'],
    ['JSON quoting "jsonrpc" below the top level', '{"doc":{"jsonrpc":"2.0"}}', false, 'opaque'],
    ['a batch with a JSON-RPC member', '[{"jsonrpc":"2.0","method":"n"},{"x":1}]', false, -32600],
    ['a request', '{"jsonrpc":"2.0","id":1,"method":"ping"}', false, 'messages'],
    ['a syntax error claiming JSON-RPC', '{"jsonrpc":"2.0",', false, -32700],
    ['garbage to a forced endpoint', 'hello', true, -32700],
    ['version 1.0', '{"jsonrpc":"1.0","id":1,"method":"ping"}', false, -32600],
    ['an empty batch', '[]', true, -32600],
    ['array params', '{"jsonrpc":"2.0","id":1,"method":"x","params":[]}', false, -32602],
    [
      'tools/call arguments that are not an object',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":[1]}}',
      false,
      -32602,
    ],
  ])('%s', (_n, text, forced, want) => {
    const r = classifyBody(text, forced);
    if (typeof want === 'string') expect(r.kind).toBe(want);
    else expect(r).toMatchObject({ kind: 'malformed', error: { code: want } });
  });

  it('recognises candidates by type, accept header or forced endpoint', () => {
    expect(mayCarryMcp('application/json; charset=utf-8', '', false)).toBe(true);
    expect(mayCarryMcp('text/plain', 'application/json, text/event-stream', false)).toBe(true);
    expect(mayCarryMcp('text/plain', '*/*', false)).toBe(false);
    expect(mayCarryMcp('', '', true)).toBe(true);
  });

  it('matches forced endpoints by host and path prefix on segment bounds', () => {
    const remote = [{ host: 'm.test', path: '/mcp' }];
    expect(isForcedRemote(remote, 'm.test', '/mcp')).toBe(true);
    expect(isForcedRemote(remote, 'm.test', '/mcp/x')).toBe(true);
    expect(isForcedRemote(remote, 'm.test', '/mcpx')).toBe(false);
    expect(isForcedRemote(remote, 'o.test', '/mcp')).toBe(false);
    expect(isForcedRemote([{ host: 'm.test', path: '/' }], 'm.test', '/any')).toBe(true);
  });

  it('builds request facts as the vsock port does: tool name and arguments for tools/call', () => {
    expect(
      requestFacts('m.test', 'tools/call', { name: 'echo', arguments: { message: 'x' } }, '4'),
    ).toEqual({
      method: 'tools/call',
      server_id: 'm.test',
      tool_name: 'echo',
      arguments: { message: 'x' },
      request_id: '4',
    });
    expect(requestFacts('m.test', 'resources/read', { uri: 'u' }, '5').arguments).toEqual({
      uri: 'u',
    });
  });

  it('judges results of tools/call only, with their text', () => {
    const call = { method: 'tools/call', tool: 'echo', started: 0 };
    expect(
      responseFacts('m.test', call, { content: [{ type: 'text', text: 'hi' }], isError: true }),
    ).toEqual({
      method: 'tools/call',
      server_id: 'm.test',
      tool_name: 'echo',
      is_error: true,
      content_text: 'hi',
    });
    expect(responseFacts('m.test', { ...call, method: 'ping' }, {})).toBeNull();
  });

  it('filters hidden tools out of a tools/list result', () => {
    const r = filterToolsList({ tools: [{ name: 'a' }, { name: 'b' }] }, (t) => t === 'b');
    expect(r).toEqual({ result: { tools: [{ name: 'a' }] }, removed: 1 });
  });

  it('keys sessions by Mcp-Session-Id, else the SSE transport sessionId', () => {
    expect(sessionKey('abc', 'sessionId=zz')).toBe('h:abc');
    expect(sessionKey('', 'x=1&sessionId=zz')).toBe('q:zz');
    expect(sessionKey('', '')).toBe('');
  });
});
