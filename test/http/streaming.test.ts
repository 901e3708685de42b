import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock } from '../../src/transport/vsock.js';
import {
  fetchVia,
  guestClient,
  makeCerts,
  reqOf,
  resOf,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';

const MIB = 1024 * 1024;
const BIG = 64 * MIB;

let certs: Certs;
let up: Upstream;
let plain: Upstream;
let g: Gateway;
let releaseSse: () => void = () => {};
let bigSent = 0;

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(
    certs,
    (req, res) => {
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('data: first\n\n');
        releaseSse = () => res.end('data: last\n\n');
        return;
      }
      if (req.url === '/big') {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': String(BIG),
        });
        const chunk = Buffer.alloc(MIB, 0x61);
        bigSent = 0;
        const pump = () => {
          while (bigSent < BIG) {
            bigSent += MIB;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/secret-response') {
        res.writeHead(200, { 'x-leak': 'yes' });
        res.end('classified');
        return;
      }
      res.end(`ok ${req.method} ${req.url}`);
    },
    { readBody: true },
  );
  plain = await startUpstream(null, (req, res) => res.end(`plain ${req.headers.host} ${req.url}`));
  g = await startGateway(certs, {
    'api.test': up.port,
    'plain.test': plain.port,
    'ws.test': up.port,
    'evil.test': up.port,
  });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
  await plain?.close();
  certs?.cleanup();
});

describe('streaming and protocol edges', () => {
  it('delivers the first SSE event before the upstream finishes the response', async () => {
    const client = guestClient(g, 'api.test');
    const res = await client.request({ path: '/sse', method: 'GET' });
    expect(res.statusCode).toBe(200);
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value as Uint8Array).toString()).toContain('data: first');
    releaseSse();
    let rest = '';
    for (let n = await it.next(); !n.done; n = await it.next())
      rest += Buffer.from(n.value as Uint8Array).toString();
    expect(rest).toContain('data: last');
    await client.close();
  });

  it('streams a 64 MiB download intact, with backpressure reaching the upstream', async () => {
    const client = guestClient(g, 'api.test');
    const res = await client.request({ path: '/big', method: 'GET' });
    const hash = createHash('sha256');
    let bytes = 0;
    let lead = -1;
    for await (const c of res.body) {
      hash.update(c as Uint8Array);
      bytes += (c as Uint8Array).length;
      if (lead < 0 && bytes >= 8 * MIB) {
        // Stop reading: a gateway that buffers would let the upstream run to the end of the body.
        await new Promise((r) => setTimeout(r, 500));
        lead = bigSent - bytes;
      }
    }
    expect(bytes).toBe(BIG);
    expect(hash.digest('hex')).toBe(
      createHash('sha256').update(Buffer.alloc(BIG, 0x61)).digest('hex'),
    );
    // Kernel socket buffers on two loopback hops hold some MiB; an unbounded gateway would reach 56 MiB.
    expect(lead).toBeGreaterThanOrEqual(0);
    expect(lead).toBeLessThan(40 * MIB);
    await client.close();
  });

  it('serves plain HTTP/1.1 on the same port, judged by the Host header', async () => {
    const r = await fetchVia(g, 'http://plain.test/path?q=1');
    expect(r.status).toBe(200);
    expect(r.text).toBe('plain plain.test /path?q=1');
    const row = (await g.sink.waitNets(1)).at(-1)!;
    expect(row).toMatchObject({ scheme: 'http', host: 'plain.test', port: 80, sni: '' });
  });

  it('carries the guest process name from the META preamble into the event', async () => {
    const sock = await connectVsock(
      { mode: 'tcp', port: g.port },
      { process_name: 'python3', pid: 99 },
    );
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          createConnection: () => sock,
          host: 'plain.test',
          path: '/meta',
          headers: { host: 'plain.test' },
        },
        (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(text).toBe('plain plain.test /meta');
    const ev = g.decider.decided.at(-1)!;
    expect(ev.common.process_name).toBe('python3');
    sock.destroy();
  });

  it('refuses a WebSocket upgrade to a blocked host with a 403 and never contacts upstream', async () => {
    g.decider.set([
      { id: 'no-ws-evil', action: 'block', when: (e) => reqOf(e)?.host === 'evil.test' },
    ]);
    const seen = up.seen.length;
    const s = await g.tlsConnect('evil.test');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.write(
      'GET /socket HTTP/1.1\r\nHost: evil.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await new Promise((r) => s.once('close', r));
    expect(out).toMatch(/^HTTP\/1\.1 403/);
    expect(out).toMatch(/no-ws-evil/);
    expect(up.seen.length).toBe(seen);
    const row = g.sink.nets.at(-1)!;
    expect(row).toMatchObject({
      host: 'evil.test',
      path: '/socket',
      rule_id: 'no-ws-evil',
      status: 403,
    });
    g.decider.set([]);
  });

  it('relays an allowed WebSocket upgrade to the upstream', async () => {
    const wsUp = up.server;
    const onUpgrade = (_req: http.IncomingMessage, socket: net.Socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
      socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
    };
    wsUp.on('upgrade', onUpgrade);
    try {
      const s = await g.tlsConnect('ws.test');
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.write(
        'GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      await new Promise<void>((resolve) =>
        s.on('data', () => out.includes('\r\n\r\n') && resolve()),
      );
      expect(out).toMatch(/^HTTP\/1\.1 101/);
      s.write('ping');
      await new Promise<void>((resolve) =>
        s.on('data', () => out.includes('echo:ping') && resolve()),
      );
      s.destroy();
    } finally {
      wsUp.off('upgrade', onUpgrade);
    }
  });

  it('judges Expect: 100-continue before inviting the body', async () => {
    g.decider.set([
      { id: 'no-upload', action: 'block', when: (e) => reqOf(e)?.path === '/upload' },
    ]);
    const s = await g.tlsConnect('api.test');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.write(
      'POST /upload HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n',
    );
    await new Promise<void>((resolve) => s.on('data', () => out.includes('\r\n\r\n') && resolve()));
    expect(out).toMatch(/^HTTP\/1\.1 403/);
    expect(out).not.toMatch(/100 Continue/);
    s.destroy();
    g.decider.set([]);
    const s2 = await g.tlsConnect('api.test');
    let out2 = '';
    s2.on('data', (d: Buffer) => (out2 += d.toString()));
    s2.write(
      'POST /upload HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n',
    );
    await new Promise<void>((resolve) =>
      s2.on('data', () => out2.includes('100 Continue') && resolve()),
    );
    s2.write('hello');
    await new Promise<void>((resolve) =>
      s2.on('data', () => out2.includes('ok POST /upload') && resolve()),
    );
    s2.destroy();
  });

  it('blocks on response status and headers before releasing the body', async () => {
    g.decider.set([
      {
        id: 'no-leak',
        types: ['http.response'],
        action: 'block',
        when: (e) => resOf(e)?.headers['x-leak'] === 'yes',
      },
    ]);
    const r = await fetchVia(g, 'https://api.test/secret-response');
    expect(r.status).toBe(403);
    expect(r.text).not.toContain('classified');
    expect(r.text).toContain('no-leak');
    const rec = g.sink.decisions.at(-1)!;
    expect(rec.event.common.event_type).toBe('http.response');
    g.decider.set([]);
  });

  it('judges a response body only when a rule reads it, and never releases a refused body', async () => {
    g.decider.set([
      {
        id: 'no-secret-docs',
        types: ['http.response'],
        action: 'block',
        readsBody: true,
        when: (e) => resOf(e)?.body.text.includes('classified') === true,
      },
    ]);
    const bad = await fetchVia(g, 'https://api.test/secret-response');
    expect(bad.status).toBe(403);
    expect(bad.text).not.toContain('classified');
    expect(bad.text).toContain('no-secret-docs');
    const ok = await fetchVia(g, 'https://api.test/plain-ok');
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('ok GET /plain-ok');
    const okEvent = g.decider.decided
      .filter((e) => e.common.event_type === 'http.response')
      .at(-1)!;
    expect(resOf(okEvent)?.body).toMatchObject({ state: 'buffered', text: 'ok GET /plain-ok' });
    g.decider.set([]);
  });
});
