import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchVia,
  makeCerts,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';

let certs: Certs;
let up: Upstream;
let g: Gateway;

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (_req, res) => res.end('ok'));
  g = await startGateway(
    certs,
    { 'api.test': up.port },
    { limits: { headersTimeoutMs: 400, maxHeaderCount: 20 } },
  );
});
afterAll(async () => {
  await g?.close();
  await up?.close();
  certs?.cleanup();
});

/** Captures the ClientHello Node's TLS client sends for `servername`. */
async function captureClientHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  const c = tls.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    servername,
  });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

function rawConnect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: g.port, host: '127.0.0.1' });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection. */
function untilClosed(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => {});
    s.once('close', () => resolve(out));
  });
}

async function lastNetError(): Promise<string | null> {
  const n = g.sink.nets.length;
  await g.sink.waitNets(n);
  return g.sink.nets.at(-1)!.error;
}

async function stillServes(): Promise<void> {
  const r = await fetchVia(g, 'https://api.test/health');
  expect(r.status).toBe(200);
}

describe('bad input on the HTTP port', () => {
  it('refuses and records a TLS connection without SNI', async () => {
    const before = g.sink.nets.length;
    const s = tls.connect({ port: g.port, host: '127.0.0.1', ca: certs.caPem });
    const outcome = await new Promise<string>((resolve) => {
      s.once('secureConnect', () => resolve('connected'));
      s.once('error', () => resolve('refused'));
      s.once('close', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]).toMatchObject({
      error: 'no_sni',
      decision: 'block',
      sni: '',
      session_id: 'test-session',
    });
    await stillServes();
  });

  it('records a handshake the guest aborts because it does not trust the CA', async () => {
    const before = g.sink.nets.length;
    const s = tls.connect({ port: g.port, host: '127.0.0.1', servername: 'api.test' });
    await new Promise<void>((resolve) => {
      s.once('error', () => resolve());
      s.once('secureConnect', () => resolve());
    });
    s.destroy();
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]).toMatchObject({
      error: 'tls_handshake',
      sni: 'api.test',
      host: 'api.test',
    });
    await stillServes();
  });

  it('records a truncated ClientHello when the client gives up mid-record', async () => {
    const hello = await captureClientHello('api.test');
    const before = g.sink.nets.length;
    const s = await rawConnect();
    const closed = untilClosed(s);
    s.end(hello.subarray(0, 40));
    await closed;
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]!.error).toBe('tls_truncated_client_hello');
    await stillServes();
  });

  it.each([
    ['binary garbage', Buffer.from([0x01, 0x02, 0x03, 0xff, 0x00]), 'unknown_protocol'],
    ['a lower-case method', Buffer.from('get / HTTP/1.1\r\n\r\n'), 'unknown_protocol'],
    [
      'a TLS record that is not a handshake',
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]),
      'tls_parse_error',
    ],
    [
      'a ClientHello with a lying length',
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0, 0, 4, 0x03, 0x03, 0, 0]),
      'tls_parse_error',
    ],
  ])('refuses %s and records why', async (_name, bytes, error) => {
    const before = g.sink.nets.length;
    const s = await rawConnect();
    const closed = untilClosed(s);
    s.write(bytes);
    await closed;
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]!.error).toBe(error);
    await stillServes();
  });

  it('answers 431 to an oversized header block and closes that connection', async () => {
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const closed = untilClosed(s);
    s.write(`GET / HTTP/1.1\r\nHost: api.test\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    const out = await closed;
    expect(out).toMatch(/^HTTP\/1\.1 431/);
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]!.error).toBe('header_too_large');
    await stillServes();
  });

  it('answers 431 to too many header fields without contacting upstream', async () => {
    const seen = up.seen.length;
    const headers = Array.from({ length: 30 }, (_, i) => `x-h${i}: v`).join('\r\n');
    const s = await g.tlsConnect('api.test');
    const closed = untilClosed(s);
    s.write(`GET / HTTP/1.1\r\nHost: api.test\r\n${headers}\r\nConnection: close\r\n\r\n`);
    expect(await closed).toMatch(/^HTTP\/1\.1 431/);
    expect(await lastNetError()).toBe('too_many_headers');
    expect(g.sink.nets.at(-1)).toMatchObject({
      session_id: 'test-session',
      decision: 'block',
      status: 431,
    });
    expect(up.seen.length).toBe(seen);
  });

  it('refuses a request smuggling attempt (Content-Length and Transfer-Encoding) before upstream', async () => {
    const seen = up.seen.length;
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const closed = untilClosed(s);
    s.write(
      'POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.test\r\n\r\n',
    );
    expect(await closed).toMatch(/^HTTP\/1\.1 400/);
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets[before]).toMatchObject({ error: 'request_smuggling', status: 400 });
    expect(up.seen.length).toBe(seen);
    await stillServes();
  });

  it('closes a slowloris client that never finishes its headers, and records it', async () => {
    const before = g.sink.nets.length;
    const s = await g.tlsConnect('api.test');
    const closed = untilClosed(s);
    s.write('GET / HTTP/1.1\r\nHost: api.test\r\n');
    const drip = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 100);
    await closed;
    clearInterval(drip);
    await g.sink.waitNets(before + 1);
    expect(g.sink.nets.slice(before).map((r) => r.error)).toContain('header_timeout');
    await stillServes();
  });

  it('refuses a request target that is not origin-form', async () => {
    const s = await g.tlsConnect('api.test');
    const closed = untilClosed(s);
    s.write('GET relative HTTP/1.1\r\nHost: api.test\r\n\r\n');
    expect(await closed).toMatch(/^HTTP\/1\.1 400/);
  });
});

describe('connection limits', () => {
  it('refuses connections past the per-guest limit, records them, and serves again once one closes', async () => {
    const small = await startGateway(
      certs,
      { 'api.test': up.port },
      { limits: { maxConnections: 2 } },
    );
    try {
      const a = await small.tlsConnect('api.test');
      const b = await small.tlsConnect('api.test');
      const third = await small.tlsConnect('api.test').then(
        (s) =>
          new Promise<string>((resolve) => {
            s.once('close', () => resolve('closed'));
            s.once('error', () => resolve('closed'));
          }),
        () => 'refused',
      );
      expect(['closed', 'refused']).toContain(third);
      await small.sink.waitNets(1);
      expect(small.sink.nets[0]!.error).toBe('too_many_connections');
      a.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const c = await small.tlsConnect('api.test');
      c.write('GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n');
      const out = await new Promise<string>((resolve) => {
        let o = '';
        c.on('data', (d: Buffer) => (o += d));
        c.once('close', () => resolve(o));
      });
      expect(out).toMatch(/^HTTP\/1\.1 200/);
      b.destroy();
    } finally {
      await small.close();
    }
  });
});
