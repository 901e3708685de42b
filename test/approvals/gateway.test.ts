/**
 * Human approval of `ask` rules in the real built gateway (docs/approvals.md): a test approver on
 * the admin API (`GET /v1/approvals?wait=1`, `POST /v1/approvals/:id`) answers allow, deny or
 * nothing while real clients wait — Node fetch through the explicit proxy, HTTP/1.1 and HTTP/2 on
 * the vsock port, a UDP DNS query, the MCP SDK client, and `celgate exec` — plus the fallback with
 * no approver, max_pending, remember: session, the API's errors, the ledger and the metrics.
 */
import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type Server } from 'node:net';
import tls from 'node:tls';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import dnsPacket from 'dns-packet';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectFramedTransport } from '../../src/transport/mcp/index.js';
import { serveExecConnection } from '../../src/transport/guest/exec-service.js';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { EVERYTHING } from '../support/mcp.js';
import { proxiedFetch, startEverything, type Everything } from '../mcp-https/harness.js';

/** Long enough for the test approver to answer on a loaded machine; the timeout test waits it out. */
const TIMEOUT_MS = 4_000;
const MAX_PENDING = 3;

let certs: Certs;
let tlsUp: Upstream;
let plainUp: Upstream;
let execGuest: Server;
let wsUp: http.Server;
let gw: RunningTestGateway;
let agent: ProxyAgent;
let gwCaPem: string;
let mcp: McpClient;
let remote: Everything;

const portOf = (a: string) => Number(a.slice(a.lastIndexOf(':') + 1));

beforeAll(async () => {
  certs = await makeCerts();
  tlsUp = await startUpstream(certs, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`upstream saw ${req.method} ${req.url}`);
  });
  plainUp = await startUpstream(null, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`plain upstream saw ${req.method} ${req.url}`);
  });
  // An upgrade-capable upstream: 101, then echoes bytes upper-cased.
  wsUp = http.createServer((_req, res) => res.end('no upgrade'));
  wsUp.on('upgrade', (_req, socket: net.Socket) => {
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    );
    socket.on('data', (c: Buffer) => socket.write(c.toString().toUpperCase()));
  });
  await new Promise<void>((r) => wsUp.listen(0, '127.0.0.1', r));
  // The guest side of exec: the real guest exec service on loopback.
  execGuest = net.createServer((s) => serveExecConnection(s));
  await new Promise<void>((r) => execGuest.listen(0, '127.0.0.1', () => r()));
  // A remote MCP server (Streamable HTTP) for MCP over HTTPS through the proxy.
  remote = await startEverything(certs, 'streamableHttp');
  const upstreamCa = join(certs.dir, 'upstream-ca.pem');
  writeFileSync(upstreamCa, certs.caPem);
  gw = await startGateway({
    config: {
      approvals: { timeout_ms: TIMEOUT_MS, max_pending: MAX_PENDING },
      vsock: { ports: { exec: (execGuest.address() as net.AddressInfo).port } },
      http: {
        proxy: '127.0.0.1:0',
        ca_dir: join(certs.dir, 'gw-certs'),
        upstream_map: {
          'ask.test': `127.0.0.1:${tlsUp.port}`,
          'free.test': `127.0.0.1:${tlsUp.port}`,
          'plain.test': `127.0.0.1:${plainUp.port}`,
          'ws.test': `127.0.0.1:${(wsUp.address() as net.AddressInfo).port}`,
          'mcp-remote.test': `127.0.0.1:${remote.port}`,
        },
        extra_ca: [upstreamCa],
      },
      dns: { static: { 'ask.example': ['192.0.2.7'] } },
      mcp: { servers: [EVERYTHING], call_timeout_ms: 10_000 },
    },
    args: ['--dns-listen', '127.0.0.1:0'],
  });
  gwCaPem = readFileSync(join(certs.dir, 'gw-certs', 'ca.cert.pem'), 'utf8');
  agent = new ProxyAgent({ uri: `http://${gw.listeners.proxy}`, requestTls: { ca: gwCaPem } });
  for (const [id, condition] of [
    ['ask-http', 'http.request.host in ["ask.test", "plain.test", "ws.test"]'],
    ['ask-dns', 'dns.request.qname == "ask.example"'],
    ['ask-mcp', 'mcp.request.tool_name == "echo"'],
    ['ask-exec', 'process.activity.executable in ["echo", "touch"]'],
  ] as const) {
    const put = await gw.api('PUT', `/v1/rules/${id}`, {
      condition,
      action: 'ask',
      reason: `${id.slice(4)} needs a human`,
    });
    expect(put.status, put.text).toBeLessThan(300);
  }
  mcp = new McpClient({ name: 'approvals-agent', version: '1' });
  await mcp.connect(
    await connectFramedTransport(
      { mode: 'tcp', host: '127.0.0.1', port: portOf(gw.listeners.mcp!) },
      { processName: 'approvals-agent' },
    ),
  );
}, 60_000);

afterAll(async () => {
  await mcp?.close().catch(() => {});
  await agent?.close();
  if (gw !== undefined && gw.process.exitCode === null) await gw.stop();
  await tlsUp?.close();
  await plainUp?.close();
  await new Promise((r) => execGuest?.close(r));
  await remote?.close();
  wsUp?.closeAllConnections();
  wsUp?.close();
  certs?.cleanup();
});

/** Waits for a pending approval (any, or one for `target`) and returns it. */
async function pending(target?: string): Promise<any> {
  for (;;) {
    const r = await gw.api('GET', '/v1/approvals?wait=1&timeout_ms=20000');
    expect(r.status, r.text).toBe(200);
    const hit = (r.json.approvals as any[]).find(
      (a) => target === undefined || a.target === target,
    );
    if (hit !== undefined) return hit;
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** The test approver: waits for the next pending approval and answers it. */
async function answerNext(
  decision: 'allow' | 'deny',
  remember: 'none' | 'session' = 'none',
  target?: string,
): Promise<any> {
  const a = await pending(target);
  const r = await gw.api('POST', `/v1/approvals/${a.id}`, { decision, remember });
  expect(r.status, r.text).toBe(200);
  return { ...a, answer: r.json };
}

const viaProxy = (url: string) => undiciFetch(url, { dispatcher: agent });

/** One HTTP/1.1 request as raw bytes on the vsock http port; resolves to the whole answer. */
function rawVsock(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(portOf(gw.listeners.http!), '127.0.0.1');
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (out += c));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n`);
  });
}

/** A WebSocket upgrade as a plain proxy request; resolves to the answer head and the echo. */
function upgradeViaProxy(path: string): Promise<{ head: string; echo: string }> {
  return new Promise((resolve) => {
    const s = net.connect(portOf(gw.listeners.proxy!), '127.0.0.1');
    let buf = '';
    let sent = false;
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      if (!sent && buf.includes('\r\n\r\n') && buf.startsWith('HTTP/1.1 101')) {
        sent = true;
        s.write('hello');
      }
      if (buf.endsWith('HELLO')) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => {
      const end = buf.indexOf('\r\n\r\n');
      resolve({ head: end < 0 ? buf : buf.slice(0, end), echo: end < 0 ? '' : buf.slice(end + 4) });
    });
    s.write(
      `GET http://ws.test${path} HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    );
  });
}

/** One HTTP/2 GET over TLS on the vsock http port. */
async function h2Get(host: string, path: string): Promise<{ status: number; body: string }> {
  const socket = net.connect(portOf(gw.listeners.http!), '127.0.0.1');
  const session = http2.connect(`https://${host}`, {
    createConnection: () =>
      tls.connect({ socket, servername: host, ca: gwCaPem, ALPNProtocols: ['h2'] }),
  });
  session.on('error', () => {});
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': path, ':method': 'GET' });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: string) => (body += c));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

type DnsAnswer = { rcode: string; answers?: { type: string; data: unknown }[] };

/** One UDP DNS query to the gateway's dns.listen; resolves to the answer. */
function dnsQuery(name: string, id: number): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const a = gw.listeners.dns_udp!;
    sock.on('message', (m) => {
      sock.close();
      resolve(dnsPacket.decode(m) as unknown as DnsAnswer);
    });
    sock.on('error', reject);
    sock.send(
      dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name }],
      }),
      portOf(a),
      a.slice(0, a.lastIndexOf(':')),
    );
  });
}

/** `celgate exec` against the gateway: exit code and output. */
function celgateExec(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN_JS, 'exec', '--socket', gw.controlSocket, '--', ...argv],
      (err, stdout, stderr) =>
        resolve({
          code: err === null ? 0 : Number((err as { code?: number }).code ?? 1),
          stdout,
          stderr,
        }),
    );
  });
}

describe('ask rules with a human approver', () => {
  it('blocks at once, as without approvals, while no approver is connected', async () => {
    const r = await viaProxy('https://ask.test/nobody');
    expect(r.status).toBe(403);
    expect(await r.text()).toContain('no approver is connected');
    const d = await dnsQuery('ask.example', 1);
    expect(d.rcode).toBe('NXDOMAIN');
    expect(tlsUp.seen.some((s) => s.url === '/nobody')).toBe(false);
  });

  it('answers the admin API with 404, 400 and an empty list before anything is held', async () => {
    const list = await gw.api('GET', '/v1/approvals');
    expect(list.status).toBe(200);
    expect(list.json.approvals).toEqual([]);
    expect(list.json.max_pending).toBe(MAX_PENDING);
    const health = await gw.api('GET', '/v1/health');
    expect(health.json.approvals).toEqual({
      pending: 0,
      approver_connected: true,
      max_pending: MAX_PENDING,
      timeout_ms: TIMEOUT_MS,
      wait_without_approver: false,
    });
    const unknown = await gw.api('POST', '/v1/approvals/nope', { decision: 'allow' });
    expect(unknown.status).toBe(404);
    const bad = await gw.api('POST', '/v1/approvals/nope', { decision: 'maybe' });
    expect(bad.status).toBe(400);
    const badRemember = await gw.api('POST', '/v1/approvals/nope', {
      decision: 'allow',
      remember: 'forever',
    });
    expect(badRemember.status).toBe(400);
  });

  it('holds an HTTPS request through the proxy until the approver allows it', async () => {
    const res = viaProxy('https://ask.test/allowed?x=1');
    const a = await answerNext('allow');
    expect(a).toMatchObject({
      protocol: 'http',
      target: 'GET https://ask.test/allowed',
      detail: '?x=1',
      rule: 'ask-http',
      reason: 'http needs a human',
    });
    expect(a.age_ms).toBeGreaterThanOrEqual(0);
    const r = await res;
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('upstream saw GET /allowed?x=1');
    // A second answer to the same approval is a conflict.
    const again = await gw.api('POST', `/v1/approvals/${a.id}`, { decision: 'deny' });
    expect(again.status).toBe(409);
  });

  it('forwards the body of a held POST whole once it is allowed', async () => {
    const body = 'x'.repeat(200_000);
    const res = undiciFetch('https://ask.test/upload', { dispatcher: agent, method: 'POST', body });
    await answerNext('allow', 'none', 'POST https://ask.test/upload');
    expect((await res).status).toBe(200);
    expect(tlsUp.seen.find((x) => x.url === '/upload')?.body.length).toBe(body.length);
  });

  it('answers 403 with the approver named when it denies', async () => {
    const res = viaProxy('https://ask.test/denied');
    await answerNext('deny');
    const r = await res;
    expect(r.status).toBe(403);
    const body = await r.text();
    expect(body).toContain('Blocked by an approver (control-socket)');
    expect(body).toContain('ask-http');
    expect(tlsUp.seen.some((s) => s.url === '/denied')).toBe(false);
  });

  it('blocks with "no answer" when nobody answers within approvals.timeout_ms', async () => {
    const res = viaProxy('https://ask.test/unanswered');
    await pending('GET https://ask.test/unanswered');
    const r = await res;
    expect(r.status).toBe(403);
    expect(await r.text()).toContain('no answer came within');
    expect((await gw.api('GET', '/v1/approvals')).json.approvals).toEqual([]);
  }, 30_000);

  it('holds HTTP/1.1 on the vsock port (direct path hands it over) and HTTP/2 over TLS', async () => {
    const h1 = rawVsock('/h1');
    await answerNext('allow', 'none', 'GET http://plain.test/h1');
    expect(await h1).toContain('plain upstream saw GET /h1');

    const h2 = h2Get('ask.test', '/h2');
    await answerNext('allow', 'none', 'GET https://ask.test/h2');
    expect(await h2).toEqual({ status: 200, body: 'upstream saw GET /h2' });

    const h2denied = h2Get('ask.test', '/h2-denied');
    await answerNext('deny', 'none', 'GET https://ask.test/h2-denied');
    expect((await h2denied).status).toBe(403);
  });

  it('holds a WebSocket upgrade through the proxy: 101 and the relay on allow, 403 on deny', async () => {
    const ok = upgradeViaProxy('/chat');
    await answerNext('allow', 'none', 'GET http://ws.test/chat');
    const r = await ok;
    expect(r.head).toMatch(/^HTTP\/1\.1 101/);
    expect(r.echo).toBe('HELLO');

    const no = upgradeViaProxy('/denied');
    await answerNext('deny', 'none', 'GET http://ws.test/denied');
    expect((await no).head).toMatch(/^HTTP\/1\.1 403/);
  });

  it('holds a DNS query: the answer on allow, NXDOMAIN on deny', async () => {
    const ok = dnsQuery('ask.example', 2);
    const a = await answerNext('allow', 'none', 'ask.example A');
    expect(a.protocol).toBe('dns');
    const answer = await ok;
    expect(answer.rcode).toBe('NOERROR');
    expect(answer.answers?.[0]).toMatchObject({ type: 'A', data: '192.0.2.7' });

    const no = dnsQuery('ask.example', 3);
    await answerNext('deny', 'none', 'ask.example A');
    expect((await no).rcode).toBe('NXDOMAIN');
  });

  it('holds an MCP tools/call: the result on allow, a JSON-RPC error on deny', async () => {
    const ok = mcp.callTool({ name: 'everything__echo', arguments: { message: 'hi' } });
    const a = await answerNext('allow', 'none', 'everything tools/call echo');
    expect(a.detail).toBe('{"message":"hi"}');
    expect((await ok).content).toEqual([{ type: 'text', text: 'Echo: hi' }]);

    const no = mcp.callTool({ name: 'everything__echo', arguments: { message: 'no' } }).then(
      () => null,
      (err: unknown) => err as McpError,
    );
    await answerNext('deny', 'none', 'everything tools/call echo');
    const err = await no;
    expect(err?.data).toMatchObject({
      rule_id: 'ask-mcp',
      reason: expect.stringContaining('Blocked by an approver'),
    });
  });

  it('holds an MCP tools/call over HTTPS (Streamable HTTP through the proxy): result on allow, error on deny', async () => {
    const via = proxiedFetch(portOf(gw.listeners.proxy!), gwCaPem);
    const client = new McpClient({ name: 'approvals-remote-agent', version: '1' });
    try {
      await client.connect(
        new StreamableHTTPClientTransport(new URL('https://mcp-remote.test/mcp'), {
          fetch: via.fetch,
        }),
      );
      const ok = client.callTool({ name: 'echo', arguments: { message: 'remote hi' } });
      const a = await answerNext('allow', 'none', 'mcp-remote.test tools/call echo');
      expect(a.protocol).toBe('mcp');
      expect((await ok).content).toEqual([{ type: 'text', text: 'Echo: remote hi' }]);

      const no = client.callTool({ name: 'echo', arguments: { message: 'remote no' } }).then(
        () => null,
        (err: unknown) => err as McpError,
      );
      await answerNext('deny', 'none', 'mcp-remote.test tools/call echo');
      const err = await no;
      expect(err?.data).toMatchObject({
        rule_id: 'ask-mcp',
        reason: expect.stringContaining('Blocked by an approver'),
      });
      // Other calls of the session went on meanwhile and still do.
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('echo');
    } finally {
      await client.close().catch(() => {});
      await via.close();
    }
  }, 30_000);

  it('holds celgate exec: the command runs on allow, exit 126 on deny', async () => {
    const ok = celgateExec('echo', 'approved');
    const a = await answerNext('allow', 'none', 'echo approved');
    expect(a.protocol).toBe('exec');
    const out = await ok;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe('approved\n');

    const no = celgateExec('echo', 'refused');
    await answerNext('deny', 'none', 'echo refused');
    const refused = await no;
    expect(refused.code).toBe(126);
    expect(refused.stderr).toContain('Blocked by an approver');
  }, 30_000);

  it('does not run a held command whose caller went away before the approval', async () => {
    const marker = join(gw.dataDir, 'should-not-exist');
    const child = spawn(
      process.execPath,
      [MAIN_JS, 'exec', '--socket', gw.controlSocket, '--', 'touch', marker],
      {
        stdio: 'ignore',
      },
    );
    const a = await pending(`touch ${marker}`);
    const gone = new Promise((r) => child.once('close', r));
    child.kill('SIGKILL');
    await gone;
    await new Promise((r) => setTimeout(r, 200));
    const r = await gw.api('POST', `/v1/approvals/${a.id}`, { decision: 'allow' });
    expect(r.status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(marker)).toBe(false);
  });

  it('blocks at once beyond approvals.max_pending, and one answer covers identical requests', async () => {
    const held = [1, 2, 3].map((i) => viaProxy(`https://ask.test/many-${i}`));
    for (const i of [1, 2, 3]) await pending(`GET https://ask.test/many-${i}`);
    const over = await viaProxy('https://ask.test/many-4');
    expect(over.status).toBe(403);
    expect(await over.text()).toContain(`${MAX_PENDING} requests already wait`);
    const list = (await gw.api('GET', '/v1/approvals')).json.approvals as any[];
    for (const a of list) await gw.api('POST', `/v1/approvals/${a.id}`, { decision: 'allow' });
    for (const r of await Promise.all(held)) expect(r.status).toBe(200);

    // Two identical requests wait under one approval; its answer releases both.
    const twins = [viaProxy('https://ask.test/twin'), viaProxy('https://ask.test/twin')];
    await pending('GET https://ask.test/twin');
    for (let i = 0; i < 100; i++) {
      const m = (await gw.api('GET', '/metrics')).text;
      if (/celgate_approvals_pending 2\b/.test(m)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const twin = await answerNext('allow', 'none', 'GET https://ask.test/twin');
    expect(twin.answer.held).toBe(2);
    for (const r of await Promise.all(twins)) expect(r.status).toBe(200);
  }, 30_000);

  it('remembers an answer for the session: the next identical request is not asked', async () => {
    const first = viaProxy('https://ask.test/remembered');
    const a = await answerNext('allow', 'session', 'GET https://ask.test/remembered');
    expect(a.answer.warning).toBeUndefined();
    expect(a.answer.remembered).toMatch(/^approval\.session\./);
    expect((await first).status).toBe(200);
    const before = (await gw.api('GET', '/metrics')).text.match(
      /celgate_approvals_total\{outcome="asked"\} (\d+)/,
    )![1];
    const second = await viaProxy('https://ask.test/remembered');
    expect(second.status).toBe(200);
    const after = (await gw.api('GET', '/metrics')).text.match(
      /celgate_approvals_total\{outcome="asked"\} (\d+)/,
    )![1];
    expect(after).toBe(before);
    const rule = await gw.api('GET', `/v1/rules/${a.answer.remembered}`);
    expect(rule.json).toMatchObject({ action: 'allow', pack_id: 'approvals' });

    // A remembered deny blocks the next one at once.
    const denied = viaProxy('https://ask.test/never');
    await answerNext('deny', 'session', 'GET https://ask.test/never');
    expect((await denied).status).toBe(403);
    const again = await viaProxy('https://ask.test/never');
    expect(again.status).toBe(403);
    expect(await again.text()).toContain('approval.session.');
    // Remembered rules live for the session only: nothing is written to the runtime overlay.
    const overlay = readFileSync(join(gw.dataDir, 'runtime-rules.json'), 'utf8');
    expect(overlay).not.toContain('approval.session.');
  });

  it('lists the approvals as JSON with `celgate approvals --json` and answers with `approvals answer`', async () => {
    const res = viaProxy('https://ask.test/cli');
    await pending('GET https://ask.test/cli');
    const listed = await new Promise<string>((resolve) =>
      execFile(
        process.execPath,
        [MAIN_JS, 'approvals', '--json', '--socket', gw.controlSocket],
        (_e, stdout) => resolve(stdout),
      ),
    );
    const items = JSON.parse(listed) as any[];
    const item = items.find((x) => x.target === 'GET https://ask.test/cli');
    expect(item).toBeDefined();
    const answered = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(
        process.execPath,
        [MAIN_JS, 'approvals', 'answer', item.id, 'deny', '--socket', gw.controlSocket],
        (e, stdout) => resolve({ code: e === null ? 0 : 1, stdout }),
      ),
    );
    expect(answered.code).toBe(0);
    expect(JSON.parse(answered.stdout)).toMatchObject({ id: item.id, decision: 'deny' });
    expect((await res).status).toBe(403);
  });

  it('asks in the interactive prompt (`celgate approvals --prompt`) and applies the typed answer', async () => {
    const child = spawn(
      process.execPath,
      [MAIN_JS, 'approvals', '--prompt', '--socket', gw.controlSocket],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    const until = async (text: string) => {
      for (let i = 0; i < 400 && !out.includes(text); i++)
        await new Promise((r) => setTimeout(r, 25));
      expect(out).toContain(text);
    };
    try {
      await until('Waiting for requests that need approval');
      const res = viaProxy('https://ask.test/prompted');
      await until('[a]llow');
      expect(out).toContain('HTTP  GET https://ask.test/prompted');
      expect(out).toContain('rule ask-http: http needs a human');
      child.stdin.write('a\n');
      await until('allowed');
      expect((await res).status).toBe(200);
    } finally {
      child.stdin.end();
      child.kill();
    }
  });

  it('counts the outcomes in /metrics and records each answer in session.db', async () => {
    const m = (await gw.api('GET', '/metrics')).text;
    for (const outcome of ['asked', 'allowed', 'denied', 'timed_out', 'overflow', 'no_approver'])
      expect(m).toMatch(new RegExp(`celgate_approvals_total\\{outcome="${outcome}"\\} [1-9]`));
    expect(m).toMatch(/celgate_approvals_pending 0\b/);

    expect(await gw.stop()).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const rows = db.prepare('SELECT * FROM approvals ORDER BY seq').all() as Record<
        string,
        unknown
      >[];
      const byTarget = (t: string) => rows.filter((r) => r.target === t);
      expect(byTarget('GET https://ask.test/allowed?x=1').length).toBe(0);
      expect(byTarget('GET https://ask.test/allowed')[0]).toMatchObject({
        protocol: 'http',
        rule_id: 'ask-http',
        answer: 'allow',
        answered_by: 'control-socket',
        remember: 'none',
      });
      expect(byTarget('GET https://ask.test/unanswered')[0]).toMatchObject({
        answer: 'timeout',
        answered_by: null,
      });
      expect(byTarget('GET https://ask.test/many-4')[0]).toMatchObject({ answer: 'overflow' });
      expect(byTarget('ask.example A').map((r) => r.answer)).toEqual(['allow', 'deny']);
      expect(byTarget('everything tools/call echo').map((r) => r.answer)).toEqual([
        'allow',
        'deny',
      ]);
      expect(byTarget('echo approved')[0]).toMatchObject({ protocol: 'exec', answer: 'allow' });
      expect(byTarget('GET https://ask.test/twin').length).toBe(2);
      for (const r of rows) expect(r.waited_ms as number).toBeGreaterThanOrEqual(0);
      // The decision rows carry the approver's verdict and reason.
      const ev = db
        .prepare(
          "SELECT decision, reason FROM security_events WHERE event_id = (SELECT event_id FROM approvals WHERE target = 'GET https://ask.test/denied')",
        )
        .get() as { decision: string; reason: string };
      expect(ev.decision).toBe('block');
      expect(ev.reason).toContain('Blocked by an approver');
    } finally {
      db.close();
    }
  });
});
