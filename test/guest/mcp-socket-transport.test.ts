/**
 * McpSocketTransport: the SDK client transport on the guest bridge's MCP relay socket. Against a
 * fake NDJSON peer (preamble, line framing, bounds, errors) and end to end through the real relay
 * → frames → gateway → server-everything with an SDK Client.
 */
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import { startMcpRelay } from '../../src/transport/guest/mcp-relay.js';
import { McpSocketTransport } from '../../src/transport/guest/mcp-socket-transport.js';
import { RpcCode } from '../../src/transport/mcp/index.js';
import { parseMetaPreamble } from '../../src/transport/vsock.js';
import { EVERYTHING, rule, startHarness } from '../support/mcp.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sockPath = () => join(mkdtempSync(join(tmpdir(), 'celgate-mcp-sock-')), 'mcp.sock');

/** A fake relay: records what arrives, lets the test write raw bytes back. */
async function fakePeer(): Promise<{
  path: string;
  received: () => Buffer;
  write: (b: string | Buffer) => void;
}> {
  const path = sockPath();
  let got = Buffer.alloc(0);
  let peer: net.Socket | null = null;
  const server = net.createServer((s) => {
    peer = s;
    s.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        peer?.destroy();
        server.close(() => r());
      }),
  );
  return { path, received: () => got, write: (b) => peer!.write(b) };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('McpSocketTransport', () => {
  it('opens with a META preamble naming the process, then sends one JSON-RPC message per line', async () => {
    const p = await fakePeer();
    const t = new McpSocketTransport({ socketPath: p.path, processName: 'agent-x' });
    cleanups.push(() => t.close());
    await t.start();
    await t.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await until(() => p.received().includes(0x0a, p.received().indexOf(0x0a) + 1));
    const pre = parseMetaPreamble(p.received());
    expect(pre.status).toBe('done');
    if (pre.status !== 'done') return;
    expect(pre.meta).toMatchObject({ process_name: 'agent-x', pid: process.pid });
    expect(p.received().subarray(pre.consumed).toString('utf8')).toBe(
      '{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    );
  });

  it('delivers replies split across chunks, and each message of a batch line', async () => {
    const p = await fakePeer();
    const t = new McpSocketTransport({ socketPath: p.path, processName: 'a' });
    cleanups.push(() => t.close());
    const got: unknown[] = [];
    t.onmessage = (m) => got.push(m);
    await t.start();
    await until(() => p.received().length > 0);
    p.write('{"jsonrpc":"2.0","id":1,');
    await new Promise((r) => setTimeout(r, 20));
    p.write(
      '"result":{}}\n[{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","method":"n"}]\n',
    );
    await until(() => got.length === 3);
    expect(got).toEqual([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', id: 2, result: {} },
      { jsonrpc: '2.0', method: 'n' },
    ]);
  });

  it('reports a line that is not JSON as E_PARSE and keeps going', async () => {
    const p = await fakePeer();
    const t = new McpSocketTransport({ socketPath: p.path, processName: 'a' });
    cleanups.push(() => t.close());
    const errors: unknown[] = [];
    const got: unknown[] = [];
    t.onerror = (e) => errors.push(e);
    t.onmessage = (m) => got.push(m);
    await t.start();
    await until(() => p.received().length > 0);
    p.write('not json\n{"jsonrpc":"2.0","id":3,"result":{}}\n');
    await until(() => got.length === 1);
    expect(isCelgateError(errors[0], 'E_PARSE')).toBe(true);
  });

  it('closes the connection on a reply line over the bound (E_LIMIT)', async () => {
    const p = await fakePeer();
    const t = new McpSocketTransport({ socketPath: p.path, processName: 'a', maxLineBytes: 64 });
    const errors: unknown[] = [];
    let closed = false;
    t.onerror = (e) => errors.push(e);
    t.onclose = () => (closed = true);
    await t.start();
    await until(() => p.received().length > 0);
    p.write(`${'x'.repeat(100)}`);
    await until(() => closed);
    expect(isCelgateError(errors[0], 'E_LIMIT')).toBe(true);
    await expect(t.send({ jsonrpc: '2.0', id: 1, method: 'ping' })).rejects.toMatchObject({
      code: 'E_UPSTREAM',
    });
  });

  it('fails to start with E_UNAVAILABLE when no relay listens', async () => {
    const t = new McpSocketTransport({ socketPath: sockPath(), processName: 'a' });
    await expect(t.start()).rejects.toMatchObject({ code: 'E_UNAVAILABLE' });
  });

  it('an SDK Client through the real relay and gateway: echo allowed, a denied tool names the rule, rows carry the process name', async () => {
    const h = await startHarness({
      upstreams: [EVERYTHING],
      rules: [rule('sock-no-sum', 'mcp.request.tool_name == "get-sum"')],
    });
    cleanups.push(() => h.close());
    const path = sockPath();
    const relay = await startMcpRelay({
      socketPath: path,
      upstream: h.endpoint,
      defaultProcessName: 'anon',
    });
    cleanups.push(() => relay.close());
    const client = new Client({ name: 't', version: '1' });
    await client.connect(new McpSocketTransport({ socketPath: path, processName: 'sock-agent' }));
    cleanups.push(() => client.close());
    const echo = await client.callTool({
      name: 'everything__echo',
      arguments: { message: 'over the socket' },
    });
    expect(echo.content).toEqual([{ type: 'text', text: 'Echo: over the socket' }]);
    const err = await client
      .callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(RpcCode.POLICY_BLOCKED);
    expect((err as McpError).data).toMatchObject({ rule_id: 'sock-no-sum' });
    await until(() => h.sink.mcpRows.some((r) => r.tool_name === 'get-sum'));
    expect(h.sink.mcpRows.find((r) => r.tool_name === 'get-sum')).toMatchObject({
      decision: 'block',
      rule_id: 'sock-no-sum',
      process_name: 'sock-agent',
    });
  });
});
