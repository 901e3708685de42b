/**
 * MCP over HTTPS through the explicit proxy of the real built gateway (`celgate start`): the SDK's
 * StreamableHTTPClientTransport and SSEClientTransport talk to server-everything (Streamable HTTP
 * and SSE modes) reached through `upstream_map`. A tool-name rule blocks one call while other
 * calls and the server's progress notifications go on; tools/list is filtered, and a rule change
 * that hides or reveals a listed tool sends tools/list_changed on the server's stream; malformed JSON-RPC
 * bodies are refused; the ledger's mcp_calls rows carry `transport = https`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  LoggingMessageNotificationSchema,
  McpError,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { makeCerts, type Certs } from '../../support/http-harness.js';
import { proxiedFetch, startEverything, type Everything } from './harness.js';

let certs: Certs;
let streamable: Everything;
let sse: Everything;
let gw: RunningTestGateway;
let via: ReturnType<typeof proxiedFetch>;
const SECRET_VALUE = 'sk-mcp-https-0123456789abcdef';

beforeAll(async () => {
  certs = await makeCerts();
  [streamable, sse] = await Promise.all([
    startEverything(certs, 'streamableHttp'),
    startEverything(certs, 'sse'),
  ]);
  const upstreamCa = join(certs.dir, 'upstream-ca.pem');
  writeFileSync(upstreamCa, certs.caPem);
  gw = await startGateway({
    env: { CELGATE_TEST_MCP_TOKEN: SECRET_VALUE },
    config: {
      secrets: [
        { id: 'mcptok', env: 'CELGATE_TEST_MCP_TOKEN', hosts: ['mcp-stream.test'], in_body: true },
      ],
      http: {
        proxy: '127.0.0.1:0',
        ca_dir: join(certs.dir, 'gw-certs'),
        upstream_map: {
          'mcp-stream.test': `127.0.0.1:${streamable.port}`,
          'mcp-sse.test': `127.0.0.1:${sse.port}`,
          'mcp-forced.test': `127.0.0.1:${streamable.port}`,
        },
        extra_ca: [upstreamCa],
      },
      mcp: { remote: [{ host: 'mcp-forced.test', path: '/mcp' }] },
    },
  });
  for (const [id, condition, reason] of [
    ['https-no-sum', 'mcp.request.tool_name == "get-sum"', 'arithmetic is forbidden'],
    [
      'https-no-secret-echo',
      'mcp.request.tool_name == "echo" && mcp.request.arguments.message == "forbidden"',
      'that message may not be echoed',
    ],
    [
      'https-no-leaky-result',
      'mcp.response.tool_name == "echo" && mcp.response.content_text.contains("leak")',
      'results mentioning leaks are withheld',
    ],
    [
      'https-no-body-marker',
      'http.request.body.text.contains("body-rule-marker")',
      'a body rule on the HTTP request still applies',
    ],
  ] as const) {
    const put = await gw.api('PUT', `/v1/rules/${id}`, {
      id,
      description: reason,
      condition,
      action: 'block',
      reason,
    });
    expect(put.status, put.text).toBeLessThan(300);
  }
  const proxyPort = Number(gw.listeners.proxy!.split(':').pop());
  via = proxiedFetch(proxyPort, readFileSync(join(certs.dir, 'gw-certs', 'ca.cert.pem'), 'utf8'));
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await via?.close();
  await Promise.all([streamable?.close(), sse?.close()]);
  certs?.cleanup();
});

/** Resolves once `n` more log notifications arrived from the server (bounded wait). */
function logs(client: Client): { seen(): number; waitFor(n: number): Promise<void> } {
  let count = 0;
  client.setNotificationHandler(LoggingMessageNotificationSchema, () => void count++);
  return {
    seen: () => count,
    waitFor: async (n) => {
      for (let i = 0; i < 160 && count < n; i++) await new Promise((r) => setTimeout(r, 50));
      expect(count).toBeGreaterThanOrEqual(n);
    },
  };
}

async function exercise(client: Client): Promise<void> {
  const log = logs(client);
  await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
  const tools = (await client.listTools()).tools.map((t) => t.name);
  expect(tools).toContain('echo');
  expect(tools).not.toContain('get-sum'); // hidden: every call of it would be blocked

  const ok = await client.callTool({ name: 'echo', arguments: { message: 'hello' } });
  expect(JSON.stringify(ok.content)).toContain('hello');

  const refused = await client
    .callTool({ name: 'echo', arguments: { message: 'forbidden' } })
    .catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(McpError);
  expect((refused as McpError).code).toBe(-32010);
  expect((refused as McpError).data).toMatchObject({
    rule_id: 'https-no-secret-echo',
    stage: 'request',
  });

  const sum = await client
    .callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })
    .catch((e: unknown) => e);
  expect((sum as McpError).data).toMatchObject({ rule_id: 'https-no-sum' });

  const withheld = await client
    .callTool({ name: 'echo', arguments: { message: 'a leak' } })
    .catch((e: unknown) => e);
  expect((withheld as McpError).data).toMatchObject({
    rule_id: 'https-no-leaky-result',
    stage: 'result',
  });

  // The session goes on: progress notifications stream while a long call runs.
  let progress = 0;
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
    undefined,
    { onprogress: () => void progress++ },
  );
  expect(long.isError ?? false).toBe(false);
  expect(progress).toBeGreaterThanOrEqual(2);
  const again = await client.callTool({ name: 'echo', arguments: { message: 'still here' } });
  expect(JSON.stringify(again.content)).toContain('still here');
  // The server's notification stream went on after the refusals (one message every 5 s).
  const before = log.seen();
  await log.waitFor(before + 1);
  await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
}

describe('MCP over HTTPS through the explicit proxy', () => {
  it('judges a Streamable HTTP session: blocks one call, filters tools/list, streams progress', async () => {
    const client = new Client({ name: 'https-agent', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL('https://mcp-stream.test/mcp'), {
        fetch: via.fetch,
      }),
    );
    try {
      await exercise(client);
    } finally {
      await client.close();
    }
  }, 60_000);

  it('judges an HTTP+SSE session: denials arrive as message events on the stream', async () => {
    const client = new Client({ name: 'sse-agent', version: '1' });
    await client.connect(
      new SSEClientTransport(new URL('https://mcp-sse.test/sse'), { fetch: via.fetch }),
    );
    try {
      await exercise(client);
    } finally {
      await client.close();
    }
  }, 60_000);

  it.each([
    ['a syntax error', 'mcp-stream.test', 'application/json', '{"jsonrpc":"2.0","id":1,', -32700],
    [
      'a wrong version',
      'mcp-stream.test',
      'application/json',
      '{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
      -32600,
    ],
    ['an empty batch with "jsonrpc" named', 'mcp-stream.test', 'application/json', '[] ', -1],
    [
      'array params',
      'mcp-stream.test',
      'application/json',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}',
      -32602,
    ],
    ['non-JSON to a forced endpoint', 'mcp-forced.test', 'text/plain', 'hello', -32700],
  ])(
    'refuses %s with a JSON-RPC error and never forwards it',
    async (_n, host, type, body, code) => {
      const r = await via.fetch(`https://${host}/mcp`, {
        method: 'POST',
        headers: { 'content-type': type, accept: 'application/json, text/event-stream' },
        body,
      });
      if (code === -1) {
        // No "jsonrpc" key and not forced: plain HTTP, left to the server.
        expect(r.status).not.toBe(200);
        await r.text();
        return;
      }
      expect(r.status).toBe(400);
      const j = (await r.json()) as { error: { code: number } };
      expect(j.error.code).toBe(code);
    },
  );

  it('keeps HTTP body rules and secret substitution working on MCP bodies', async () => {
    const client = new Client({ name: 'secret-agent', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL('https://mcp-stream.test/mcp'), {
        fetch: via.fetch,
      }),
    );
    try {
      // The upstream echoes the real value; the guest only ever sees the placeholder.
      const r = await client.callTool({
        name: 'echo',
        arguments: { message: 'token celgate-secret-mcptok' },
      });
      const text = JSON.stringify(r.content);
      expect(text).toContain('celgate-secret-mcptok');
      expect(text).not.toContain(SECRET_VALUE);
      // The http.request is judged first: a body rule refuses the POST with a 403.
      const refused = await client
        .callTool({ name: 'echo', arguments: { message: 'body-rule-marker' } })
        .catch((e: unknown) => e);
      expect(String(refused)).toMatch(/https-no-body-marker/);
    } finally {
      await client.close();
    }
  });

  it('judges each message of a batch: refused ones answered by celgate, the rest by the server', async () => {
    const post = async (body: unknown, session?: string) => {
      const r = await via.fetch('https://mcp-stream.test/mcp', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-03-26',
          ...(session === undefined ? {} : { 'mcp-session-id': session }),
        },
        body: JSON.stringify(body),
      });
      const text = await r.text();
      const type = r.headers.get('content-type') ?? '';
      const messages = type.includes('event-stream')
        ? text
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .flatMap((l) => [JSON.parse(l.slice(6))].flat())
        : text === ''
          ? []
          : [JSON.parse(text)].flat();
      return { status: r.status, session: r.headers.get('mcp-session-id'), messages };
    };
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-03-26',
        capabilities: {},
        clientInfo: { name: 'raw', version: '1' },
      },
    });
    expect(init.status).toBe(200);
    const session = init.session!;
    expect(session).toBeTruthy();
    const note = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    expect(note.status).toBe(202);
    const batch = await post(
      [
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'echo', arguments: { message: 'one' } },
        },
        {
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'get-sum', arguments: { a: 1, b: 2 } },
        },
        { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } },
      ],
      session,
    );
    const byId = new Map(batch.messages.map((m: { id: number }) => [m.id, m]));
    expect(byId.get(2)).toMatchObject({
      error: { code: -32010, data: { rule_id: 'https-no-sum' } },
    });
    expect(JSON.stringify(byId.get(1))).toContain('one');
    // Only refused requests: celgate answers alone, nothing reaches the server.
    const alone = await post(
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'get-sum', arguments: {} } },
      session,
    );
    expect(alone.status).toBe(200);
    expect(alone.messages).toMatchObject([{ id: 3, error: { code: -32010 } }]);
  });

  it.each([
    [
      'Streamable HTTP',
      () =>
        new StreamableHTTPClientTransport(new URL('https://mcp-stream.test/mcp'), {
          fetch: via.fetch,
        }),
    ],
    [
      'HTTP+SSE',
      () => new SSEClientTransport(new URL('https://mcp-sse.test/sse'), { fetch: via.fetch }),
    ],
  ])(
    'tells a %s session to list again when a rule change hides or reveals a tool it was shown',
    async (_n, transport) => {
      const client = new Client({ name: 'list-agent', version: '1' });
      let notices = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => void notices++);
      // The server itself may say list_changed once after initialize (it registers tools that
      // depend on the client's capabilities then): count from after that.
      let base = 0;
      const until = async (n: number) => {
        for (let i = 0; i < 100 && notices < base + n; i++)
          await new Promise((r) => setTimeout(r, 50));
        expect(notices - base).toBe(n);
      };
      const names = async () => (await client.listTools()).tools.map((t) => t.name);
      const rule = (id: string, condition: string) =>
        gw.api('PUT', `/v1/rules/${id}`, {
          id,
          description: 'list_changed test',
          condition,
          action: 'block',
          reason: 'list_changed test',
        });
      await client.connect(transport());
      try {
        expect(await names()).toContain('get-tiny-image');
        await new Promise((r) => setTimeout(r, 500));
        base = notices;
        expect(
          (await rule('https-hide-image', 'mcp.request.tool_name == "get-tiny-image"')).status,
        ).toBeLessThan(300);
        await until(1);
        expect(await names()).not.toContain('get-tiny-image');
        expect((await gw.api('DELETE', '/v1/rules/https-hide-image')).status).toBeLessThan(300);
        await until(2);
        expect(await names()).toContain('get-tiny-image');
        // A change that hides or reveals none of the listed tools says nothing.
        expect(
          (await rule('https-unrelated', 'http.request.host == "nowhere.test"')).status,
        ).toBeLessThan(300);
        await new Promise((r) => setTimeout(r, 300));
        expect(notices - base).toBe(2);
        expect((await gw.api('DELETE', '/v1/rules/https-unrelated')).status).toBeLessThan(300);
      } finally {
        await client.close();
      }
    },
    30_000,
  );

  it('records every message in mcp_calls with transport https and the deciding rule', async () => {
    expect(await gw.stop()).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const rows = db.prepare('SELECT * FROM mcp_calls ORDER BY seq').all() as Record<
        string,
        unknown
      >[];
      expect(rows.length).toBeGreaterThan(0);
      expect(new Set(rows.map((r) => r.transport))).toEqual(new Set(['https']));
      for (const server of ['mcp-stream.test', 'mcp-sse.test']) {
        const blocked = rows.filter(
          (r) => r.server_id === server && r.rule_id === 'https-no-secret-echo',
        );
        expect(blocked).toHaveLength(1);
        expect(blocked[0]).toMatchObject({
          direction: 'request',
          decision: 'block',
          method: 'tools/call',
          tool_name: 'echo',
        });
        expect(
          rows.filter((r) => r.server_id === server && r.rule_id === 'https-no-leaky-result'),
        ).toMatchObject([{ direction: 'response', decision: 'block' }]);
      }
      const events = db
        .prepare(
          "SELECT event_type, decision, rule_id FROM security_events WHERE rule_id LIKE 'https-%'",
        )
        .all();
      expect(events).toContainEqual({
        event_type: 'mcp.request',
        decision: 'block',
        rule_id: 'https-no-sum',
      });
    } finally {
      db.close();
    }
  });
});
