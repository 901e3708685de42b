/**
 * `celgate start` with an `mcp` config section, spawned as the real built binary: rules installed
 * through the control API, the SDK Client as the guest over the frame transport, server-everything
 * as a stdio upstream, and the rows checked in session.db.
 */
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectFramedTransport } from '../../src/transport/mcp/index.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { EVERYTHING, FLAKY } from '../support/mcp.js';

let gw: RunningTestGateway;
let client: Client;

beforeAll(async () => {
  gw = await startGateway({
    config: { mcp: { servers: [EVERYTHING, FLAKY], call_timeout_ms: 2_000 } },
  });
  const put = await gw.api('PUT', '/v1/rules/mcp-no-sum', {
    id: 'mcp-no-sum',
    description: 'no sums',
    condition: 'mcp.request.tool_name == "get-sum"',
    action: 'block',
    reason: 'arithmetic is forbidden in this session',
  });
  expect(put.status, put.text).toBeLessThan(300);
  const port = Number(String(gw.listeners.mcp).split(':').pop());
  client = new Client({ name: 'e2e-agent', version: '1' });
  await client.connect(
    await connectFramedTransport(
      { mode: 'tcp', host: '127.0.0.1', port },
      { processName: 'e2e-agent' },
    ),
  );
});
afterAll(async () => {
  await client?.close().catch(() => {});
  await gw?.stop();
});

describe('celgate start with MCP servers', () => {
  it('reports the MCP listener in /v1/health and the servers in /v1/mcp/servers', async () => {
    const health = await gw.api('GET', '/v1/health');
    expect(health.json.listeners.mcp).toMatch(/^127\.0\.0\.1:\d+$/);
    const servers = await gw.api('GET', '/v1/mcp/servers');
    expect(servers.status).toBe(200);
    expect(servers.json.servers.map((s: { id: string; state: string }) => [s.id, s.state])).toEqual(
      [
        ['everything', 'ready'],
        ['flaky', 'ready'],
      ],
    );
  });

  it('hides, blocks and allows tools, and session.db holds the rows with the rule id', async () => {
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('everything__echo');
    expect(names).not.toContain('everything__get-sum');
    const echo = await client.callTool({
      name: 'everything__echo',
      arguments: { message: 'ledger' },
    });
    expect(echo.content).toEqual([{ type: 'text', text: 'Echo: ledger' }]);
    let denied: McpError | null = null;
    try {
      await client.callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } });
    } catch (err) {
      denied = err as McpError;
    }
    expect(denied?.data).toMatchObject({
      rule_id: 'mcp-no-sum',
      reason: expect.stringContaining('arithmetic is forbidden'),
    });

    const stopped = await gw.stop();
    expect(stopped).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const rows = db.prepare('SELECT * FROM mcp_calls ORDER BY seq').all() as Record<
        string,
        unknown
      >[];
      const blocked = rows.find((r) => r.tool_name === 'get-sum');
      expect(blocked).toMatchObject({
        direction: 'request',
        server_id: 'everything',
        decision: 'block',
        rule_id: 'mcp-no-sum',
        process_name: 'e2e-agent',
      });
      const echoRows = rows.filter((r) => r.tool_name === 'echo');
      expect(echoRows.map((r) => r.direction).sort()).toEqual(['request', 'response']);
      expect(echoRows.every((r) => r.decision === 'allow')).toBe(true);
      const events = db
        .prepare('SELECT * FROM security_events WHERE event_id = ?')
        .all(blocked!.event_id) as Record<string, unknown>[];
      expect(events).toHaveLength(1);
      expect(JSON.stringify(events[0])).toContain('mcp-no-sum');
    } finally {
      db.close();
    }
  });
});
