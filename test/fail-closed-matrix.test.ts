/**
 * The fail-closed matrix: every protocol × every way enforcement can fail, against real gateways
 * (`celgate start`), each cell checked for the protocol's answer and the recorded decision.
 *
 *   protocols: HTTP on the vsock port, HTTP through the explicit proxy, DNS, MCP, exec
 *   failures:  a rule that errors while deciding (the engine cannot decide), `ask` without an
 *              approver, the ledger down (below its free-space reserve), the upstream unreachable,
 *              a reload with an invalid pack (the previous rules must stay in force)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { Client, ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectFramedTransport } from '../src/transport/mcp/index.js';
import { startGateway, type RunningTestGateway } from './support/gateway.js';
import { EVERYTHING } from './support/mcp.js';

type Protocol = 'http-vsock' | 'http-proxy' | 'dns' | 'mcp' | 'exec';
type Scenario = 'engine-error' | 'ask' | 'ledger-down' | 'upstream-down' | 'bad-reload';
const PROTOCOLS: Protocol[] = ['http-vsock', 'http-proxy', 'dns', 'mcp', 'exec'];

/** What each cell must produce: the client's answer, and the decision recorded for the event. */
const EXPECTED: Record<Scenario, Record<Protocol, { answer: string; decision: string | null }>> = {
  'engine-error': {
    'http-vsock': { answer: '502', decision: 'error' },
    'http-proxy': { answer: '502', decision: 'error' },
    dns: { answer: 'ESERVFAIL', decision: 'error' },
    mcp: { answer: 'refused', decision: 'error' },
    exec: { answer: 'error', decision: 'error' },
  },
  ask: {
    'http-vsock': { answer: '403', decision: 'block' },
    'http-proxy': { answer: '403', decision: 'block' },
    dns: { answer: 'ENOTFOUND', decision: 'block' },
    mcp: { answer: 'refused', decision: 'block' },
    exec: { answer: 'block', decision: 'block' },
  },
  // Refused without deciding; the refusal rows do not fit below the reserve, so none is asserted.
  'ledger-down': {
    'http-vsock': { answer: '503', decision: null },
    'http-proxy': { answer: '503', decision: null },
    dns: { answer: 'ESERVFAIL', decision: null },
    mcp: { answer: 'refused', decision: null },
    exec: { answer: 'error', decision: null },
  },
  'upstream-down': {
    'http-vsock': { answer: '502', decision: 'allow' },
    'http-proxy': { answer: '502', decision: 'allow' },
    dns: { answer: 'ESERVFAIL', decision: 'allow' },
    mcp: { answer: 'refused', decision: null },
    exec: { answer: 'no-guest', decision: 'allow' },
  },
  'bad-reload': {
    'http-vsock': { answer: '403', decision: 'block' },
    'http-proxy': { answer: '403', decision: 'block' },
    dns: { answer: 'ENOTFOUND', decision: 'block' },
    mcp: { answer: 'refused', decision: 'block' },
    exec: { answer: 'block', decision: 'block' },
  },
};

const EVENT_TYPE: Record<Protocol, string> = {
  'http-vsock': 'http.request',
  'http-proxy': 'http.request',
  dns: 'dns.request',
  mcp: 'mcp.request',
  exec: 'process.exec',
};

/** One rule per event type, matching the traffic below, with a condition per scenario. */
function pack(kind: 'error' | 'ask' | 'block'): string {
  const cond = {
    http: kind === 'error' ? 'int(http.request.query) > 0' : 'http.request.host == "api.test"',
    dns: kind === 'error' ? 'int(dns.request.qname) > 0' : 'dns.request.qname == "api.test"',
    mcp: kind === 'error' ? 'int(mcp.request.tool_name) > 0' : 'mcp.request.tool_name == "echo"',
    exec:
      kind === 'error'
        ? 'int(process.activity.executable) > 0'
        : 'process.activity.executable == "true"',
  };
  const action = kind === 'ask' ? 'ask' : 'block';
  const rules = Object.entries(cond)
    .map(([k, c]) => `  - id: m-${k}\n    condition: '${c}'\n    action: ${action}\n`)
    .join('');
  return `id: matrix\nversion: "1"\ndefault_action: allow\nrules:\n${rules}`;
}

let upstream: http.Server;
let upPort: number;
const gateways = new Map<Scenario, RunningTestGateway>();
const mcpClients: McpClient[] = [];

async function start(scenario: Scenario): Promise<RunningTestGateway> {
  const dir = mkdtempSync(join(tmpdir(), `celgate-matrix-${scenario}-`));
  const packFile = join(dir, 'matrix.yaml');
  writeFileSync(
    packFile,
    pack(
      scenario === 'engine-error'
        ? 'error'
        : scenario === 'ask'
          ? 'ask'
          : scenario === 'bad-reload'
            ? 'block'
            : 'block',
    ),
  );
  const down = scenario === 'upstream-down';
  const rules = scenario === 'ledger-down' || down ? [] : [packFile];
  const gw = await startGateway({
    config: {
      rules,
      ...(scenario === 'ledger-down'
        ? { ledger: { min_free_bytes: Number.MAX_SAFE_INTEGER } }
        : {}),
      http: { upstream_map: { 'api.test': down ? '127.0.0.1:1' : `127.0.0.1:${upPort}` } },
      dns: {
        upstreams: down ? ['127.0.0.1:1'] : [],
        static: down ? {} : { 'api.test': ['203.0.113.9'] },
        listen: '127.0.0.1:0',
        timeout_ms: 300,
      },
      mcp: {
        servers: down ? [{ id: 'everything', url: 'http://127.0.0.1:1/mcp' }] : [EVERYTHING],
        call_timeout_ms: 2_000,
      },
    },
  });
  if (scenario === 'bad-reload') {
    writeFileSync(
      packFile,
      'id: matrix\nversion: "1"\ndefault_action: allow\nrules:\n  - id: broken\n    condition: http.request.nope ==\n    action: block\n',
    );
    const r = await gw.api('POST', '/v1/reload');
    expect(r.status).toBe(422);
  }
  return gw;
}

async function exercise(gw: RunningTestGateway, p: Protocol): Promise<string> {
  switch (p) {
    case 'http-vsock': {
      const c = new Client(`http://${gw.listeners.http}`);
      try {
        const r = await c.request({
          path: '/x?q=abc',
          method: 'GET',
          headers: { host: 'api.test' },
        });
        await r.body.text();
        return String(r.statusCode);
      } finally {
        await c.close();
      }
    }
    case 'http-proxy': {
      const agent = new ProxyAgent({ uri: `http://${gw.listeners.proxy}` });
      try {
        const r = await request('http://api.test/x?q=abc', { dispatcher: agent });
        await r.body.text();
        return String(r.statusCode);
      } finally {
        await agent.close();
      }
    }
    case 'dns': {
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([gw.listeners.dns_udp!]);
      try {
        await resolver.resolve4('api.test');
        return 'answered';
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'error';
      }
    }
    case 'mcp': {
      const client = new McpClient({ name: 'matrix', version: '1' });
      mcpClients.push(client);
      try {
        await client.connect(
          await connectFramedTransport(
            { mode: 'tcp', host: '127.0.0.1', port: Number(gw.listeners.mcp!.split(':').pop()) },
            { processName: 'matrix' },
          ),
        );
        await client.callTool({ name: 'everything__echo', arguments: { message: 'm' } });
        return 'answered';
      } catch {
        return 'refused';
      } finally {
        await client.close().catch(() => {});
      }
    }
    case 'exec': {
      const r = await gw.api('POST', '/v1/exec', { argv: ['true'] });
      if (r.json.decision === 'allow') return r.json.reached_guest === false ? 'no-guest' : 'ran';
      return r.json.decision;
    }
  }
}

beforeAll(async () => {
  upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upPort = (upstream.address() as AddressInfo).port;
  const scenarios = Object.keys(EXPECTED) as Scenario[];
  const started = await Promise.all(scenarios.map((s) => start(s)));
  scenarios.forEach((s, i) => gateways.set(s, started[i]!));
}, 120_000);

afterAll(async () => {
  await Promise.all([...gateways.values()].map((g) => g.stop()));
  upstream?.close();
});

describe.each(Object.keys(EXPECTED) as Scenario[])('fail closed when %s', (scenario) => {
  it.each(PROTOCOLS)('%s', async (p) => {
    const gw = gateways.get(scenario)!;
    const want = EXPECTED[scenario][p];
    expect(await exercise(gw, p)).toBe(want.answer);
    if (want.decision === null) return;
    const events = (await gw.api('GET', `/v1/events?limit=5&event_type=${EVENT_TYPE[p]}`)).json
      .events as { decision: string; mode: string; rule_id: string | null }[];
    expect(events[0]?.decision, JSON.stringify(events[0])).toBe(want.decision);
    if (want.decision === 'error') expect(events[0]!.mode).toBe('fail_closed');
    if (scenario === 'bad-reload') expect(events[0]!.rule_id).toMatch(/^m-/);
  });
});
