/**
 * The direct path (src/transport/http/direct.ts) and its hand-over to the Node http.Server path:
 * what it takes itself, what it hands over mid-connection (with the unread bytes intact), the
 * upstream pool's failures (malformed answer, timeout, stale kept-alive socket), and the keep-alive
 * and slow-head deadlines. Wire-level details shared with the Node path are in wire.test.ts.
 */
import net from 'node:net';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startGateway, startUpstream, type Certs, type Gateway, type Upstream } from '../fixtures/http/harness.js';

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Reads `n` responses (content-length or chunked bodies) from a socket; replies numbered in `heads` answer HEAD (no body). */
function readReplies(s: tls.TLSSocket | net.Socket, n: number, heads: ReadonlySet<number> = new Set(), timeoutMs = 3000): Promise<{ replies: Reply[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const replies: Reply[] = [];
    let closed = false;
    const timer = setTimeout(() => reject(new Error(`timed out with ${replies.length}/${n} replies: ${buf.toString('latin1')}`)), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      s.removeListener('data', onData);
      resolve({ replies, closed });
    };
    const parse = (): boolean => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      let rest = buf.subarray(end + 4);
      let body: Buffer;
      if (heads.has(replies.length)) {
        body = Buffer.alloc(0);
      } else if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = [];
        for (;;) {
          const nl = rest.indexOf('\r\n');
          if (nl < 0) return false;
          const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
          if (rest.length < nl + 2 + size + 2) return false;
          if (size === 0) {
            rest = rest.subarray(nl + 4);
            break;
          }
          parts.push(rest.subarray(nl + 2, nl + 2 + size));
          rest = rest.subarray(nl + 2 + size + 2);
        }
        body = Buffer.concat(parts);
      } else {
        const len = Number(headers['content-length'] ?? 0);
        if (rest.length < len) return false;
        body = rest.subarray(0, len);
        rest = rest.subarray(len);
      }
      replies.push({ status, headers, body });
      buf = rest;
      return true;
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (replies.length < n && parse());
      if (replies.length >= n) done();
    };
    s.on('data', onData);
    s.once('close', () => {
      closed = true;
      if (replies.length >= n) return;
      clearTimeout(timer);
      resolve({ replies, closed });
    });
  });
}

const closedSoon = (s: net.Socket, ms = 3000) =>
  new Promise<boolean>((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    s.resume();
  });

let certs: Certs;
let up: Upstream;
let g: Gateway;

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(
    certs,
    (req, res, body) => {
      if (req.url === '/secret') return void res.end('the secret word');
      if (req.url === '/silent') return; // never answers
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method} ${req.url} ${body.length}`);
    },
    { readBody: true },
  );
  g = await startGateway(certs, { 'api.test': up.port }, { limits: { upstreamTimeoutMs: 300 } });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
  certs?.cleanup();
});

describe('direct path hand-over', () => {
  it('serves a GET, then hands a pipelined POST with a body to the Node path, bytes intact', async () => {
    const s = await g.tlsConnect('api.test');
    const got = readReplies(s, 3);
    s.write('GET /one HTTP/1.1\r\nHost: api.test\r\n\r\nPOST /two HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\n\r\nhelloGET /three HTTP/1.1\r\nHost: api.test\r\n\r\n');
    const { replies } = await got;
    expect(replies.map((r) => [r.status, r.body.toString()])).toEqual([
      [200, 'GET /one 0'],
      [200, 'POST /two 5'],
      [200, 'GET /three 0'],
    ]);
    s.destroy();
  });

  it('records request smuggling that follows a good request on the same connection', async () => {
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const got = readReplies(s, 2);
    s.write('GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\n');
    await new Promise((r) => setTimeout(r, 50));
    s.write('POST /x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    const { replies } = await got;
    expect(replies.map((r) => r.status)).toEqual([200, 400]);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'request_smuggling']);
    expect(up.seen.some((r) => r.url === '/x')).toBe(false);
    s.destroy();
  });

  it('answers an oversized head after a good request with 431 and records it', async () => {
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const got = readReplies(s, 2);
    s.write('GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\n');
    s.write(`GET /big HTTP/1.1\r\nHost: api.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const { replies } = await got;
    expect(replies.map((r) => r.status)).toEqual([200, 431]);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'header_too_large']);
    s.destroy();
  });

  it('refuses CONNECT after a good request (405, recorded)', async () => {
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const got = readReplies(s, 2);
    s.write('GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\nCONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n');
    const { replies } = await got;
    expect(replies.map((r) => r.status)).toEqual([200, 405]);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'connect_refused']);
    s.destroy();
  });

  it('hands requests to the Node path while a rule reads response bodies, and the rule applies', async () => {
    g.decider.set([{ id: 'no-secret', types: ['http.response'], action: 'block', readsBody: true, when: (e) => JSON.stringify(e).includes('the secret word') }]);
    try {
      const s = await g.tlsConnect('api.test');
      const got = readReplies(s, 2);
      s.write('GET /secret HTTP/1.1\r\nHost: api.test\r\n\r\nGET /public HTTP/1.1\r\nHost: api.test\r\n\r\n');
      const { replies } = await got;
      expect(replies[0]!.status).toBe(403);
      expect(replies[0]!.headers['x-celgate-rule']).toBe('no-secret');
      expect(replies[1]!.body.toString()).toBe('GET /public 0');
      s.destroy();
    } finally {
      g.decider.set([]);
    }
  });

  it('answers HEAD denials without a body and keeps the connection', async () => {
    g.decider.set([{ id: 'no-head', action: 'block', when: (e) => JSON.stringify(e).includes('/denied') }]);
    try {
      const s = await g.tlsConnect('api.test');
      const got = readReplies(s, 2, new Set([0]));
      // The answer to HEAD must not carry the body bytes its content-length announces.
      s.write('HEAD /denied HTTP/1.1\r\nHost: api.test\r\n\r\nGET /after HTTP/1.1\r\nHost: api.test\r\n\r\n');
      const { replies } = await got;
      expect(replies[0]!.status).toBe(403);
      expect(Number(replies[0]!.headers['content-length'])).toBeGreaterThan(0);
      // Had the 403 carried its body, the next reply would start inside it and not parse as a 200.
      expect(replies[1]!.status).toBe(200);
      s.destroy();
    } finally {
      g.decider.set([]);
    }
  });
});

describe('direct path upstream failures', () => {
  it('answers 502 when the upstream sends garbage, and keeps serving', async () => {
    const garbage = net.createServer((c) => c.once('data', () => c.end('NOT HTTP AT ALL\r\n\r\n')));
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    const port = (garbage.address() as net.AddressInfo).port;
    const plain = await startGateway(certs, { 'junk.test': port });
    try {
      const s = net.connect(plain.port, '127.0.0.1');
      const got = readReplies(s, 1);
      s.write('GET / HTTP/1.1\r\nHost: junk.test\r\n\r\n');
      const { replies } = await got;
      expect(replies[0]!.status).toBe(502);
      expect(replies[0]!.body.toString()).toMatch(/malformed response/);
      const rows = await plain.sink.waitNets(1);
      expect(rows[0]!.error).toBe('upstream_error');
      s.destroy();
    } finally {
      await plain.close();
      garbage.close();
    }
  });

  it('answers 502 when the upstream does not answer in time', async () => {
    const s = await g.tlsConnect('api.test');
    const got = readReplies(s, 1);
    s.write('GET /silent HTTP/1.1\r\nHost: api.test\r\n\r\n');
    const { replies } = await got;
    expect(replies[0]!.status).toBe(502);
    expect(replies[0]!.body.toString()).toMatch(/did not answer within 300 ms/);
    s.destroy();
  });

  it('re-sends a GET once when its pooled connection turns out to be closed', async () => {
    let connections = 0;
    const flaky = await startUpstream(certs, (req, res) => res.end(`ok ${req.url}`));
    flaky.server.on('secureConnection', () => (connections += 1));
    const gw = await startGateway(certs, { 'flaky.test': flaky.port });
    try {
      const s = await gw.tlsConnect('flaky.test');
      let got = readReplies(s, 1);
      s.write('GET /a HTTP/1.1\r\nHost: flaky.test\r\n\r\n');
      expect((await got).replies[0]!.body.toString()).toBe('ok /a');
      // The upstream drops its idle kept-alive connections without a word, as servers do.
      flaky.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
      got = readReplies(s, 1);
      s.write('GET /b HTTP/1.1\r\nHost: flaky.test\r\n\r\n');
      const b = (await got).replies[0]!;
      expect([b.status, b.body.toString()]).toEqual([200, 'ok /b']);
      expect(connections).toBe(2);
      s.destroy();
    } finally {
      await gw.close();
      await flaky.close();
    }
  });
});

describe('direct path deadlines', () => {
  it('closes a kept-alive connection left idle, quietly; a slow head after it is recorded', async () => {
    const gw = await startGateway(certs, { 'api.test': up.port }, { limits: { keepAliveTimeoutMs: 150, headersTimeoutMs: 150 } });
    try {
      const idle = await gw.tlsConnect('api.test');
      let got = readReplies(idle, 1);
      idle.write('GET /a HTTP/1.1\r\nHost: api.test\r\n\r\n');
      expect((await got).replies[0]!.status).toBe(200);
      expect(await closedSoon(idle, 2000)).toBe(true);
      expect(gw.sink.nets.map((r) => r.error)).toEqual([null]);

      const slow = await gw.tlsConnect('api.test');
      got = readReplies(slow, 1);
      slow.write('GET /b HTTP/1.1\r\nHost: api.test\r\n\r\n');
      expect((await got).replies[0]!.status).toBe(200);
      slow.write('GET /c HTTP/1.1\r\nHo'); // never finished
      expect(await closedSoon(slow, 2000)).toBe(true);
      const rows = await gw.sink.waitNets(3);
      expect(rows.map((r) => r.error)).toEqual([null, null, 'header_timeout']);
    } finally {
      await gw.close();
    }
  });
});

describe('direct: false', () => {
  it('serves every request on the Node path', async () => {
    const gw = await startGateway(certs, { 'api.test': up.port }, { direct: false });
    try {
      const s = await gw.tlsConnect('api.test');
      const got = readReplies(s, 2);
      s.write('GET /one HTTP/1.1\r\nHost: api.test\r\n\r\nGET /two HTTP/1.1\r\nHost: api.test\r\n\r\n');
      const { replies } = await got;
      expect(replies.map((r) => r.body.toString())).toEqual(['GET /one 0', 'GET /two 0']);
      s.destroy();
    } finally {
      await gw.close();
    }
  });
});
