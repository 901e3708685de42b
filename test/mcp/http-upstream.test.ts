/**
 * A Streamable HTTP upstream: an SDK server on a loopback port this test starts, reached by celgate
 * through the SDK's StreamableHTTPClientTransport; the guest is the SDK Client over frames.
 */
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { rule, startHarness, type Harness } from '../support/mcp.js';

let http: HttpServer;
let h: Harness;

function mcpServer(): Server {
  const s = new Server({ name: 'web', version: '1.0.0' }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      { name: 'shout', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
      { name: 'delete_everything', inputSchema: { type: 'object', properties: {} } },
    ],
  }));
  s.setRequestHandler(CallToolRequestSchema, async (req) => ({
    content: [{ type: 'text', text: String(req.params.arguments?.text ?? '').toUpperCase() }],
  }));
  return s;
}

beforeAll(async () => {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const sid = req.headers['mcp-session-id'];
    let t = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!t) {
      t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, t!),
      });
      await mcpServer().connect(t);
    }
    await t.handleRequest(req, res);
  };
  http = createServer((req, res) => {
    handle(req, res).catch((err: Error) => res.destroy(err));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const port = (http.address() as { port: number }).port;
  h = await startHarness({
    upstreams: [{ id: 'web', url: `http://127.0.0.1:${port}/mcp` }],
    rules: [
      rule(
        'no-delete',
        'mcp.request.server_id == "web" && mcp.request.tool_name == "delete_everything"',
      ),
    ],
  });
});
afterAll(async () => {
  await h?.close();
  http?.closeAllConnections();
  await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
});

describe('Streamable HTTP upstream', () => {
  it('fails calls cleanly while the HTTP server is down and reconnects when it is back', async () => {
    const c = await h.client();
    const port = (http.address() as { port: number }).port;
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
    await expect(
      c.callTool({ name: 'web__shout', arguments: { text: 'x' } }),
    ).rejects.toMatchObject({ code: -32000 });
    await new Promise<void>((r) => http.listen(port, '127.0.0.1', () => r()));
    const up = h.service.gateway.upstreams.get('web')!;
    for (let i = 0; i < 100 && up.state !== 'ready'; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(up.state).toBe('ready');
    expect(up.restarts).toBeGreaterThanOrEqual(1);
    const r = await c.callTool({ name: 'web__shout', arguments: { text: 'back' } });
    expect(r.content).toEqual([{ type: 'text', text: 'BACK' }]);
  });

  it('lists, calls and denies tools of an HTTP MCP server', async () => {
    const c = await h.client();
    const names = (await c.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(['web__shout']);
    const r = await c.callTool({ name: 'web__shout', arguments: { text: 'quiet' } });
    expect(r.content).toEqual([{ type: 'text', text: 'QUIET' }]);
    await expect(c.callTool({ name: 'web__delete_everything', arguments: {} })).rejects.toThrow(
      McpError,
    );
    await h.sink.recorded();
    expect(h.sink.mcpRows.find((x) => x.tool_name === 'delete_everything')).toMatchObject({
      decision: 'block',
      rule_id: 'no-delete',
      server_id: 'web',
    });
  });
});
