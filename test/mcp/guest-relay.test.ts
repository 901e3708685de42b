/**
 * The guest path end to end, in process: a local NDJSON client → the guest bridge's MCP relay
 * (src/transport/guest/mcp-relay.ts) → frames over tcp vsock → the MCP gateway → server-everything.
 */
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMcpRelay, type McpRelayHandle } from '../../src/transport/guest/mcp-relay.js';
import { RpcCode } from '../../src/transport/mcp/index.js';
import { EVERYTHING, rule, startHarness, type Harness } from '../support/mcp.js';

let h: Harness;
let relay: McpRelayHandle;
let socketPath: string;

beforeAll(async () => {
  h = await startHarness({
    upstreams: [EVERYTHING],
    rules: [rule('relay-no-sum', 'mcp.request.tool_name == "get-sum"')],
  });
  socketPath = join(mkdtempSync(join(tmpdir(), 'celgate-relay-')), 'mcp.sock');
  relay = await startMcpRelay({
    socketPath,
    upstream: h.endpoint,
    defaultProcessName: 'relay-client',
  });
});
afterAll(async () => {
  await relay?.close();
  await h?.close();
});

/** A line-oriented JSON-RPC client on the relay's Unix socket. */
function lineClient(): { send(m: unknown): void; reply(id: unknown): Promise<any>; close(): void } {
  const s = net.connect(socketPath);
  const got: any[] = [];
  let buf = '';
  s.on('data', (c) => {
    buf += c.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      got.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  return {
    send: (m) => s.write(`${JSON.stringify(m)}\n`),
    async reply(id) {
      for (let i = 0; i < 200; i++) {
        const r = got.find((m) => m.id === id);
        if (r) return r;
        await new Promise((res) => setTimeout(res, 25));
      }
      throw new Error(`no reply for ${String(id)}; got ${JSON.stringify(got)}`);
    },
    close: () => s.destroy(),
  };
}

describe('guest relay → gateway', () => {
  it('initializes, calls echo and is denied get-sum through the relay', async () => {
    const c = lineClient();
    c.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'line', version: '1' },
      },
    });
    expect((await c.reply(1)).result.serverInfo.name).toBe('celgate');
    c.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    c.send({
      jsonrpc: '2.0',
      id: 'e',
      method: 'tools/call',
      params: { name: 'everything__echo', arguments: { message: 'via relay' } },
    });
    expect((await c.reply('e')).result.content).toEqual([
      { type: 'text', text: 'Echo: via relay' },
    ]);
    c.send({
      jsonrpc: '2.0',
      id: 's',
      method: 'tools/call',
      params: { name: 'everything__get-sum', arguments: { a: 1, b: 2 } },
    });
    const denied = await c.reply('s');
    expect(denied.error.code).toBe(RpcCode.POLICY_BLOCKED);
    expect(denied.error.data.rule_id).toBe('relay-no-sum');
    expect(h.sink.mcpRows.find((r) => r.request_id === 's')).toMatchObject({
      decision: 'block',
      process_name: 'relay-client',
    });
    c.close();
  });
});
