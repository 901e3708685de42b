/**
 * The pool's stream face (upstream-call.ts), against loopback upstreams: Content-Length and
 * chunked uploads with backpressure, interim 1xx skipped, trailers dropped (and not leaked into
 * the next response on the kept-alive connection), a large response streamed, a 101 handing over
 * the raw socket, and an upstream that closes mid-body.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Upstream } from '../../src/transport/http/upstream.js';
import { UpstreamCall, type UpstreamResponse } from '../../src/transport/http/upstream-call.js';
import { CHUNKED, UpstreamPool } from '../../src/transport/http/upstream-pool.js';

function listen(server: net.Server): Promise<number> {
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)),
  );
}

describe('UpstreamCall over the pool', () => {
  let server: http.Server;
  let port: number;
  let upstream: Upstream;
  let pool: UpstreamPool;
  const sockets = new Set<net.Socket>();

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/upload') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () =>
          res.end(JSON.stringify({ n, te: req.headers['transfer-encoding'] ?? null })),
        );
        return;
      }
      if (req.url === '/early') {
        res.writeEarlyHints({ link: '</a.css>; rel=preload' });
        res.writeContinue();
        res.end('after interim');
        return;
      }
      if (req.url === '/trailers') {
        res.writeHead(200, { 'transfer-encoding': 'chunked', trailer: 'x-sum' });
        res.write('body');
        res.addTrailers({ 'x-sum': 'abc' });
        res.end();
        return;
      }
      if (req.url === '/big') {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let left = 256;
        res.writeHead(200, { 'content-length': String(chunk.length * left) });
        const pump = () => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': '100000' });
        res.write(Buffer.alloc(1000));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res.setHeader('x-seen', JSON.stringify(req.rawHeaders));
      res.end('plain');
    });
    server.on('upgrade', (req, socket, head) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello',
      );
      if (head.length > 0) socket.write(head);
      socket.on('data', (c: Buffer) => socket.write(c));
    });
    server.on('connection', (s: net.Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    port = await listen(server);
    upstream = new Upstream({ timeoutMs: 2000, guard: null });
    pool = new UpstreamPool(upstream);
  });

  afterAll(async () => {
    pool.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const call = (
    path: string,
    method = 'GET',
    bodyLength = 0,
    headers: string[] = [],
    upgrade = false,
  ): { c: UpstreamCall; res: Promise<UpstreamResponse> } => {
    let c!: UpstreamCall;
    const res = new Promise<UpstreamResponse>((resolve, reject) => {
      c = new UpstreamCall(
        upstream,
        pool,
        {
          scheme: 'http',
          host: '127.0.0.1',
          port,
          method,
          path,
          headers: ['host', `127.0.0.1:${port}`, ...headers],
          bodyLength,
          ...(upgrade ? { upgrade: true } : {}),
        },
        { response: resolve },
      );
      c.on('error', reject);
    });
    return { c, res };
  };

  const text = async (r: UpstreamResponse): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const c of r) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  };

  it('sends a Content-Length body and a chunked body of many writes', async () => {
    const body = Buffer.alloc(300_000, 0x62);
    const a = call('/upload', 'POST', body.length, ['content-length', String(body.length)]);
    a.c.end(body);
    expect(JSON.parse(await text(await a.res))).toEqual({ n: body.length, te: null });
    const b = call('/upload', 'POST', CHUNKED);
    for (let i = 0; i < 50; i++) b.c.write(Buffer.alloc(10_000, 0x63));
    b.c.end();
    expect(JSON.parse(await text(await b.res))).toEqual({ n: 500_000, te: 'chunked' });
  });

  it('skips interim 1xx heads and drops trailers without leaking them into the next response', async () => {
    const a = call('/early');
    a.c.end();
    const r = await a.res;
    expect(r.statusCode).toBe(200);
    expect(await text(r)).toBe('after interim');
    const t = call('/trailers');
    t.c.end();
    expect(await text(await t.res)).toBe('body');
    const n = call('/next');
    n.c.end();
    const next = await n.res;
    expect(next.rawHeaders.map((h) => h.toLowerCase())).not.toContain('x-sum');
    expect(await text(next)).toBe('plain');
  });

  it('streams a large response with backpressure', async () => {
    const a = call('/big');
    a.c.end();
    const r = await a.res;
    let n = 0;
    for await (const c of r) {
      n += (c as Buffer).length;
      if (n < 1 << 20) await new Promise((x) => setTimeout(x, 1));
    }
    expect(n).toBe(256 * 64 * 1024);
    expect(r.complete).toBe(true);
  });

  it('reports an upstream that closes mid-body as an aborted response', async () => {
    const a = call('/cut');
    a.c.end();
    const r = await a.res;
    const aborted = new Promise<void>((resolve) => r.once('aborted', () => resolve()));
    r.resume();
    await aborted;
    expect(r.complete).toBe(false);
  });

  it('hands the raw socket over on a 101, with the bytes that followed the head', async () => {
    const got = await new Promise<{ status: number; socket: net.Socket; rest: Buffer }>(
      (resolve, reject) => {
        const c = new UpstreamCall(
          upstream,
          pool,
          {
            scheme: 'http',
            host: '127.0.0.1',
            port,
            method: 'GET',
            path: '/ws',
            headers: ['host', 'x', 'upgrade', 'websocket', 'connection', 'Upgrade'],
            bodyLength: 0,
            upgrade: true,
          },
          {
            response: () => reject(new Error('not a 101')),
            upgrade: (res, socket, rest) => resolve({ status: res.statusCode, socket, rest }),
          },
        );
        c.on('error', reject);
        c.end();
      },
    );
    expect(got.status).toBe(101);
    let seen = got.rest.toString();
    got.socket.on('data', (c: Buffer) => (seen += c.toString()));
    got.socket.resume();
    got.socket.write('ping');
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toBe('helloping');
    got.socket.destroy();
  });
});
