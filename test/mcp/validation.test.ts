/**
 * JSON-RPC validation on the wire (raw frames and the NDJSON endpoint): -32700, -32600, batches,
 * unknown methods, ids preserved, initialization order, cancellation, and fail-closed engine errors.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startMcpService,
  RpcCode,
  MAX_LINE_BYTES,
  type McpService,
  type StreamClosed,
} from '../../src/transport/mcp/index.js';
import type { Decider, Decision } from '../../src/events/decision.js';
import { FLAKY, RecordingSink, startHarness, type Harness } from '../support/mcp.js';
import { RawGuest } from './wire.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ upstreams: [FLAKY], callTimeoutMs: 5_000 });
});
afterAll(async () => h?.close());

async function guest(): Promise<RawGuest> {
  const g = await RawGuest.connect(h.endpoint.port);
  await g.init(1);
  return g;
}

async function reply(g: RawGuest, id: unknown): Promise<any> {
  await g.until(() => g.messages(1).some((m) => !Array.isArray(m) && m.id === id));
  return g.messages(1).find((m) => !Array.isArray(m) && m.id === id);
}

describe('JSON-RPC validation', () => {
  it('answers malformed JSON with -32700 and a null id, and keeps the stream', async () => {
    const g = await guest();
    g.send(1, '{"jsonrpc": "2.0", "id": 5, "method": ');
    const r = await reply(g, null);
    expect(r.error.code).toBe(RpcCode.PARSE_ERROR);
    g.send(1, { jsonrpc: '2.0', id: 6, method: 'ping' });
    expect((await reply(g, 6)).result).toEqual({});
    g.close();
  });

  it('answers an invalid request shape with -32600 and its id', async () => {
    const g = await guest();
    g.send(1, { jsonrpc: '1.0', id: 'v1', method: 'ping' });
    expect((await reply(g, 'v1')).error.code).toBe(RpcCode.INVALID_REQUEST);
    g.close();
  });

  it('answers a batch with an array of replies, skipping notifications, ids preserved', async () => {
    const g = await guest();
    g.send(1, [
      { jsonrpc: '2.0', id: 'a', method: 'ping' },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'flaky__ok', arguments: {} } },
      { nope: true },
    ]);
    await g.until(() => g.messages(1).some((m) => Array.isArray(m)));
    const batch = g.messages(1).find((m) => Array.isArray(m)) as any[];
    expect(batch).toHaveLength(3);
    expect(batch[0]).toEqual({ jsonrpc: '2.0', id: 'a', result: {} });
    expect(batch[1].id).toBe(7);
    expect(batch[1].result.content[0].text).toMatch(/^ok/);
    expect(batch[2]).toMatchObject({ id: null, error: { code: RpcCode.INVALID_REQUEST } });
    g.close();
  });

  it('refuses a method no server advertises with -32601', async () => {
    const g = await guest();
    g.send(1, { jsonrpc: '2.0', id: 'u', method: 'tasks/list', params: {} });
    expect((await reply(g, 'u')).error.code).toBe(RpcCode.METHOD_NOT_FOUND);
    g.close();
  });

  it('refuses requests before initialize', async () => {
    const g = await RawGuest.connect(h.endpoint.port);
    g.send(1, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect((await reply(g, 1)).error.code).toBe(RpcCode.INVALID_REQUEST);
    g.close();
  });

  it('cancels an in-flight call on notifications/cancelled and sends no reply for it', async () => {
    const g = await guest();
    g.send(1, {
      jsonrpc: '2.0',
      id: 'slow',
      method: 'tools/call',
      params: { name: 'flaky__hang', arguments: {} },
    });
    await new Promise((r) => setTimeout(r, 100));
    g.send(1, {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 'slow', reason: 'user' },
    });
    g.send(1, { jsonrpc: '2.0', id: 'after', method: 'ping' });
    await reply(g, 'after');
    await new Promise((r) => setTimeout(r, 100));
    expect(g.messages(1).some((m) => m.id === 'slow')).toBe(false);
    const row = h.sink.mcpRows.find((x) => x.request_id === 'slow');
    expect(row).toMatchObject({ tool_name: 'hang', is_error: true });
    g.close();
  });

  it('serves newline-delimited JSON-RPC on the NDJSON endpoint, bounded', async () => {
    const closed: StreamClosed[] = [];
    const svc = await startMcpService(
      {
        upstreams: [],
        origin: { session_id: 'nd' },
        vsock: { mode: 'tcp', host: '127.0.0.1', port: 0 },
        ndjson: '127.0.0.1:0',
      },
      {
        decider: h.service.gateway.deps.decider,
        sink: new RecordingSink(),
        onStreamClosed: (c) => closed.push(c),
      },
    );
    try {
      const port = Number(svc.addresses.mcp_ndjson!.split(':').pop());
      const s = net.connect({ port, host: '127.0.0.1' });
      let buf = '';
      s.on('data', (c) => (buf += c.toString()));
      s.write(
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"n","version":"1"}}}\n',
      );
      s.write('{"jsonrpc":"2.0","id":2,"method":"ping"}\nnot json\n');
      for (let i = 0; i < 100 && buf.split('\n').length < 4; i++)
        await new Promise((r) => setTimeout(r, 20));
      const lines = buf
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.id)).toEqual(expect.arrayContaining([1, 2, null]));
      expect(lines.find((l) => l.id === 1).result.serverInfo.name).toBe('celgate');
      expect(lines.find((l) => l.id === null).error.code).toBe(RpcCode.PARSE_ERROR);
      s.destroy();
      // A line over the limit closes the connection with a recorded reason.
      const big = net.connect({ port, host: '127.0.0.1' });
      big.on('error', () => {});
      const ended = new Promise<void>((r) => big.once('close', () => r()));
      big.write(Buffer.alloc(MAX_LINE_BYTES + 10, 0x20));
      await ended;
      expect(closed.some((c) => c.reason === 'oversize' && c.hostile)).toBe(true);
    } finally {
      await svc.close();
    }
  });
});

describe('fail closed', () => {
  const failing: Record<string, Decider> = {
    'an error verdict': {
      decide: (): Decision => ({
        action: 'error',
        rule_id: 'broken',
        reason: 'rule "broken" failed to evaluate',
        mode: 'fail_closed',
        matches: [],
        findings: [],
        errors: [],
        generation: 1,
        eval_ns: 0,
      }),
    },
    'a decider that throws': {
      decide: () => {
        throw new Error('engine exploded');
      },
    },
  };
  let svc: McpService;
  afterAll(async () => svc?.close());

  it.each(Object.keys(failing))(
    'refuses every request on %s, with -32011 and the reason',
    async (name) => {
      await svc?.close();
      const sink = new RecordingSink();
      svc = await startMcpService(
        {
          upstreams: [FLAKY],
          origin: { session_id: 'fc' },
          vsock: { mode: 'tcp', host: '127.0.0.1', port: 0 },
        },
        { decider: failing[name]!, sink },
      );
      const g = await RawGuest.connect(Number(svc.addresses.mcp!.split(':').pop()));
      g.write(Buffer.alloc(0));
      await g.init(1);
      const init = g.messages(1).find((m) => m.id === 'init');
      expect(init.error.code).toBe(RpcCode.POLICY_ERROR);
      expect(init.error.message).toMatch(/fail closed/);
      await sink.recorded();
      expect(sink.mcpRows[0]).toMatchObject({ decision: 'error', method: 'initialize' });
      expect(sink.decisions[0]!.decision.action).toBe('error');
      g.close();
    },
  );
});

describe('upstream failures', () => {
  it('keeps running when a server cannot start, and calls to it fail cleanly with -32000', async () => {
    const sink = new RecordingSink();
    const svc = await startMcpService(
      {
        upstreams: [{ id: 'missing', command: '/nonexistent/mcp-server' }, FLAKY],
        origin: { session_id: 'missing' },
        vsock: { mode: 'tcp', host: '127.0.0.1', port: 0 },
        backoffInitialMs: 50,
        backoffMaxMs: 200,
      },
      { decider: h.service.gateway.deps.decider, sink },
    );
    try {
      const g = await RawGuest.connect(Number(svc.addresses.mcp!.split(':').pop()));
      await g.init(1);
      g.send(1, { jsonrpc: '2.0', id: 'l', method: 'tools/list' });
      const list = await reply(g, 'l');
      expect(list.result.tools.map((t: { name: string }) => t.name)).toContain('flaky__ok');
      expect(
        list.result.tools.every((t: { name: string }) => !t.name.startsWith('missing__')),
      ).toBe(true);
      g.send(1, {
        jsonrpc: '2.0',
        id: 'c',
        method: 'tools/call',
        params: { name: 'missing__anything', arguments: {} },
      });
      const call = await reply(g, 'c');
      expect(call.error).toMatchObject({
        code: RpcCode.SERVER_ERROR,
        data: { reason: 'unavailable' },
      });
      await new Promise((r) => setTimeout(r, 400));
      expect(svc.gateway.upstreams.get('missing')!.restarts).toBeGreaterThanOrEqual(2);
      g.close();
    } finally {
      await svc.close();
    }
  });

  it('refuses tools/call arguments that are not an object before dispatch', async () => {
    const g = await guest();
    g.send(1, {
      jsonrpc: '2.0',
      id: 'arr',
      method: 'tools/call',
      params: { name: 'flaky__read_file', arguments: ['/etc/shadow'] },
    });
    expect((await reply(g, 'arr')).error.code).toBe(RpcCode.INVALID_PARAMS);
    g.close();
  });
});

describe('per-session bounds', () => {
  it('refuses requests beyond the in-flight bound and serves again once calls finish', async () => {
    const g = await guest();
    const batch = Array.from({ length: 64 }, (_, i) => ({
      jsonrpc: '2.0',
      id: `h${i}`,
      method: 'tools/call',
      params: { name: 'flaky__hang', arguments: {} },
    }));
    g.send(1, batch);
    await new Promise((r) => setTimeout(r, 200));
    g.send(1, { jsonrpc: '2.0', id: 'over', method: 'resources/list' });
    const over = await reply(g, 'over');
    expect(over.error).toMatchObject({
      code: RpcCode.INVALID_REQUEST,
      message: expect.stringContaining('in flight'),
    });
    g.send(1, { jsonrpc: '2.0', id: 'p', method: 'ping' });
    expect((await reply(g, 'p')).result).toEqual({});
    g.close();
  });
});
