/**
 * MCP over HTTPS in the in-process HTTP pipeline (vsock port, scripted decider, scripted upstream):
 * the events' fields, a refused result replaced in a JSON answer and in an SSE event, SSE events
 * relayed as they arrive (not when the stream ends), HTTP/2 streams, `mcp.remote` forcing, and a
 * compressed answer refused instead of relayed unjudged.
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McpRequestEvent, McpResponseEvent, SecurityEvent } from '../../src/events/index.js';
import {
  fetchVia,
  makeCerts,
  startGateway,
  startUpstream,
  ScriptedDecider,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';
import { fetch as undiciFetch } from 'undici';

let certs: Certs;
let up: Upstream;
let gw: Gateway;
let release: (() => void) | null = null;

type Msg = { jsonrpc: string; id?: number; method?: string; params?: Record<string, any> };

function answer(m: Msg): object {
  const text = String(m.params?.arguments?.message ?? '');
  return { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text }] } };
}

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res, body) => {
    const url = req.url ?? '/';
    if (url === '/release') {
      release?.();
      res.end('ok');
      return;
    }
    let msgs: Msg[] = [];
    try {
      msgs = ([] as Msg[]).concat(body.length > 0 ? JSON.parse(body.toString()) : []);
    } catch {
      // not JSON: the plain answer below
    }
    const requests = msgs.filter((m) => m.id !== undefined);
    if (url.startsWith('/json')) {
      if (requests.length === 0) {
        res.writeHead(202).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(requests.length === 1 ? answer(requests[0]!) : requests.map(answer)));
      return;
    }
    if (url.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } })}\n\n`,
      );
      // The answers wait until the client has seen the first event (proves streaming).
      release = () => {
        for (const r of requests)
          res.write(`event: message\ndata: ${JSON.stringify(answer(r))}\n\n`);
        res.end();
      };
      return;
    }
    if (url.startsWith('/gzip')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      res.end(zlib.gzipSync(`data: ${JSON.stringify(answer(requests[0]!))}\n\n`));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`plain ${body.toString()}`);
  });
  const decider = new ScriptedDecider([
    {
      id: 'no-bad-tool',
      types: ['mcp.request'],
      action: 'block',
      when: (e) => (e as McpRequestEvent).mcp.request.tool_name === 'bad',
    },
    {
      id: 'exploding-request',
      types: ['mcp.request'],
      action: 'throw',
      when: (e) => (e as McpRequestEvent).mcp.request.tool_name === 'boom',
    },
    {
      id: 'exploding-result',
      types: ['mcp.response'],
      action: 'throw',
      when: (e) => (e as McpResponseEvent).mcp.response.content_text === 'boom-result',
    },
    {
      id: 'no-secret-result',
      types: ['mcp.response'],
      action: 'block',
      when: (e) => (e as McpResponseEvent).mcp.response.content_text.includes('secret-result'),
    },
  ]);
  gw = await startGateway(
    certs,
    { 'mcp.test': up.port, 'forced.test': up.port },
    { mcp: { remote: [{ host: 'forced.test', path: '/json' }] } },
    decider,
  );
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  certs?.cleanup();
});

const call = (id: number, name: string, message: string): Msg => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: { message } },
});

const post = (url: string, body: unknown, type = 'application/json') =>
  fetchVia(gw, url, {
    method: 'POST',
    headers: { 'content-type': type, accept: 'application/json, text/event-stream' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const mcpEvents = (type: string): SecurityEvent[] =>
  gw.sink.decisions.map((d) => d.event).filter((e) => e.common.event_type === type);

describe('MCP over HTTPS in the HTTP pipeline', () => {
  it('decides each request as mcp.request with the host as server id, then judges the result', async () => {
    const r = await post('https://mcp.test/json', [
      call(1, 'echo', 'hello'),
      call(2, 'echo', 'a secret-result'),
    ]);
    expect(r.status).toBe(200);
    const out = JSON.parse(r.text) as { id: number; result?: unknown; error?: any }[];
    expect(out.find((m) => m.id === 1)?.result).toBeDefined();
    expect(out.find((m) => m.id === 2)?.error).toMatchObject({
      code: -32010,
      data: { rule_id: 'no-secret-result', stage: 'result' },
    });
    const req = mcpEvents('mcp.request').at(-1) as McpRequestEvent;
    expect(req.mcp.request).toEqual({
      method: 'tools/call',
      server_id: 'mcp.test',
      tool_name: 'echo',
      arguments: { message: 'a secret-result' },
      request_id: '2',
    });
  });

  it('answers a refused request itself; the upstream never sees it', async () => {
    const before = up.seen.length;
    const r = await post('https://mcp.test/json', call(3, 'bad', 'x'));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({
      id: 3,
      error: { data: { rule_id: 'no-bad-tool' } },
    });
    expect(up.seen.length).toBe(before);
  });

  it('relays SSE events as they arrive and replaces a refused result in its event', async () => {
    const res = await undiciFetch('https://mcp.test/sse', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify([call(4, 'echo', 'fine'), call(5, 'echo', 'secret-result')]),
      dispatcher: gw.dispatcher,
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('notifications/progress'))
      text += Buffer.from((await reader.read()).value!).toString();
    // The first event reached the client while the upstream still holds its answers.
    await fetchVia(gw, 'https://mcp.test/release');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)));
    expect(data.find((m) => m.id === 4)?.result).toBeDefined();
    expect(data.find((m) => m.id === 5)?.error).toMatchObject({ code: -32010 });
  });

  it('judges MCP on an HTTP/2 stream', async () => {
    const s = http2.connect('https://mcp.test', {
      createConnection: () =>
        tls.connect({
          host: '127.0.0.1',
          port: gw.port,
          servername: 'mcp.test',
          ca: certs.caPem,
          ALPNProtocols: ['h2'],
        }),
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const st = s.request({
          ':method': 'POST',
          ':path': '/json',
          'content-type': 'application/json',
        });
        let out = '';
        st.setEncoding('utf8');
        st.on('data', (c: string) => (out += c));
        st.on('end', () => resolve(out));
        st.on('error', reject);
        st.end(JSON.stringify(call(6, 'bad', 'x')));
      });
      expect(JSON.parse(body)).toMatchObject({ id: 6, error: { code: -32010 } });
    } finally {
      s.close();
    }
  });

  it('treats an mcp.remote endpoint as MCP whatever the content type says', async () => {
    const r = await post(
      'https://forced.test/json',
      JSON.stringify(call(7, 'bad', 'x')),
      'text/plain',
    );
    expect(JSON.parse(r.text)).toMatchObject({ id: 7, error: { code: -32010 } });
    const junk = await post('https://forced.test/json', 'not json', 'text/plain');
    expect(junk.status).toBe(400);
    expect(JSON.parse(junk.text)).toMatchObject({ id: null, error: { code: -32700 } });
    // Elsewhere on that host, and plain text elsewhere, is plain HTTP.
    expect((await post('https://forced.test/other', 'not json', 'text/plain')).text).toBe(
      'plain not json',
    );
  });

  it('fails closed when the engine throws on a request or on a result (-32011)', async () => {
    const before = up.seen.length;
    const r = await post('https://mcp.test/json', call(9, 'boom', 'x'));
    expect(JSON.parse(r.text)).toMatchObject({
      id: 9,
      error: { code: -32011, data: { decision: 'error', stage: 'request' } },
    });
    expect(up.seen.length).toBe(before);
    const res = await post('https://mcp.test/json', call(10, 'echo', 'boom-result'));
    expect(JSON.parse(res.text)).toMatchObject({
      id: 10,
      error: { code: -32011, data: { stage: 'result' } },
    });
  });

  it('refuses a compressed answer it cannot judge instead of relaying it', async () => {
    const r = await post('https://mcp.test/gzip', call(8, 'echo', 'x'));
    expect(r.status).toBe(502);
    expect(JSON.parse(r.text)).toMatchObject({ error: { data: { reason: 'compressed_answer' } } });
  });
});
