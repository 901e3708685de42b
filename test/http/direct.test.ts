/**
 * The direct path (src/transport/http/direct.ts) and its hand-over to the Node http.Server path:
 * what it takes itself (bodiless requests and Content-Length bodies: forwarded, dropped after a
 * refusal or an early answer), what it hands over mid-connection (with the unread bytes intact), the
 * upstream pool's failures (malformed answer, timeout, stale kept-alive socket), and the keep-alive
 * and slow-head deadlines. Wire-level details shared with the Node path are in wire.test.ts.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeCerts,
  reqOf,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';
import { values, Wire, type WireResponse } from '../fixtures/http/wire.js';

const text = (r: WireResponse) => r.body.toString();
/** Reads `n` responses (to GETs unless `methods` says otherwise). */
async function readN(w: Wire, n: number, methods: string[] = []): Promise<WireResponse[]> {
  const out: WireResponse[] = [];
  for (let i = 0; i < n; i++) out.push(await w.read(methods[i] ?? 'GET'));
  return out;
}

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
  it('answers a GET, a POST with a body and a GET pipelined in one write, in order, bytes intact', async () => {
    const w = await Wire.to(g);
    await w.write(
      'GET /one HTTP/1.1\r\nHost: api.test\r\n\r\nPOST /two HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\n\r\nhelloGET /three HTTP/1.1\r\nHost: api.test\r\n\r\n',
    );
    expect((await readN(w, 3)).map((r) => [r.status, text(r)])).toEqual([
      [200, 'GET /one 0'],
      [200, 'POST /two 5'],
      [200, 'GET /three 0'],
    ]);
    w.destroy();
  });

  it('records request smuggling that follows a good request on the same connection', async () => {
    const before = g.sink.nets.length;
    const w = await Wire.to(g);
    await w.write('GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\n');
    expect((await w.read()).status).toBe(200);
    await w.write(
      'POST /x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect((await w.read()).status).toBe(400);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'request_smuggling']);
    expect(up.seen.some((r) => r.url === '/x')).toBe(false);
    w.destroy();
  });

  it('answers an oversized head after a good request with 431 and records it', async () => {
    const before = g.sink.nets.length;
    const w = await Wire.to(g);
    await w.write('GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\n');
    await w.write(`GET /big HTTP/1.1\r\nHost: api.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect((await readN(w, 2)).map((r) => r.status)).toEqual([200, 431]);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'header_too_large']);
    w.destroy();
  });

  it('refuses CONNECT after a good request (405, recorded)', async () => {
    const before = g.sink.nets.length;
    const w = await Wire.to(g);
    await w.write(
      'GET /fine HTTP/1.1\r\nHost: api.test\r\n\r\nCONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n',
    );
    expect((await readN(w, 2)).map((r) => r.status)).toEqual([200, 405]);
    const rows = await g.sink.waitNets(before + 2);
    expect(rows.slice(before).map((r) => r.error)).toEqual([null, 'connect_refused']);
    w.destroy();
  });

  it('hands requests to the Node path while a rule reads response bodies, and the rule applies', async () => {
    g.decider.set([
      {
        id: 'no-secret',
        types: ['http.response'],
        action: 'block',
        readsBody: true,
        when: (e) => JSON.stringify(e).includes('the secret word'),
      },
    ]);
    try {
      const w = await Wire.to(g);
      await w.write(
        'GET /secret HTTP/1.1\r\nHost: api.test\r\n\r\nGET /public HTTP/1.1\r\nHost: api.test\r\n\r\n',
      );
      const [secret, pub] = await readN(w, 2);
      expect(secret!.status).toBe(403);
      expect(values(secret!, 'x-celgate-rule')).toEqual(['no-secret']);
      expect(text(pub!)).toBe('GET /public 0');
      w.destroy();
    } finally {
      g.decider.set([]);
    }
  });

  it('answers HEAD denials without a body and keeps the connection', async () => {
    g.decider.set([
      { id: 'no-head', action: 'block', when: (e) => JSON.stringify(e).includes('/denied') },
    ]);
    try {
      const w = await Wire.to(g);
      // The answer to HEAD must not carry the body bytes its content-length announces.
      await w.write(
        'HEAD /denied HTTP/1.1\r\nHost: api.test\r\n\r\nGET /after HTTP/1.1\r\nHost: api.test\r\n\r\n',
      );
      const [head, after] = await readN(w, 2, ['HEAD']);
      expect(head!.status).toBe(403);
      expect(Number(values(head!, 'content-length')[0])).toBeGreaterThan(0);
      // Had the 403 carried its body, the next reply would start inside it and not parse as a 200.
      expect([after!.status, text(after!)]).toEqual([200, 'GET /after 0']);
      w.destroy();
    } finally {
      g.decider.set([]);
    }
  });
});

describe('direct path request bodies (Content-Length)', () => {
  it('forwards POST bodies on the direct path: one pooled upstream connection for GET, POST, GET', async () => {
    let connections = 0;
    const echo = await startUpstream(certs, (req, res, body) =>
      res.end(
        `${req.method} ${body.length} ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`,
      ),
    );
    echo.server.on('secureConnection', () => (connections += 1));
    const gw = await startGateway(certs, { 'echo.test': echo.port });
    try {
      const w = await Wire.to(gw, 'echo.test');
      const body = Buffer.alloc(3 * 1024 * 1024, 7); // several TLS records and socket writes, with backpressure
      await w.write('GET /a HTTP/1.1\r\nHost: echo.test\r\n\r\n');
      expect(text(await w.read())).toBe('GET 0 e3b0c44298fc1c14');
      await w.write(
        Buffer.concat([
          Buffer.from(
            `POST /b HTTP/1.1\r\nHost: echo.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
          ),
          body,
        ]),
      );
      expect(text(await w.read('POST', 10_000))).toBe(
        `POST ${body.length} ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`,
      );
      await w.write('GET /c HTTP/1.1\r\nHost: echo.test\r\n\r\n');
      expect(text(await w.read())).toBe('GET 0 e3b0c44298fc1c14');
      // Handed to the Node path, the POST would have gone out on its https.Agent: a second connection.
      expect(connections).toBe(1);
      const rows = await gw.sink.waitNets(3);
      expect(rows.map((r) => r.bytes_in)).toEqual([0, body.length, 0]);
      const post = gw.sink.decisions.find((d) => reqOf(d.event)?.method === 'POST')!;
      expect(reqOf(post.event)!.body).toMatchObject({
        state: 'streamed',
        size: body.length,
        content_type: 'application/octet-stream',
      });
      w.destroy();
    } finally {
      await gw.close();
      await echo.close();
    }
  });

  it('drops the body of a refused POST and serves the next request on the same connection', async () => {
    g.decider.set([{ id: 'no-upload', action: 'block', when: (e) => reqOf(e)?.method === 'POST' }]);
    try {
      const seen = up.seen.length;
      const w = await Wire.to(g);
      await w.write(
        `POST /up HTTP/1.1\r\nHost: api.test\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(100_000)}GET /next HTTP/1.1\r\nHost: api.test\r\n\r\n`,
      );
      const [refused, next] = await readN(w, 2);
      expect(refused!.status).toBe(403);
      expect([next!.status, text(next!)]).toEqual([200, 'GET /next 0']);
      expect(up.seen.slice(seen).map((r) => r.url)).toEqual(['/next']);
      w.destroy();
    } finally {
      g.decider.set([]);
    }
  });

  it('relays an answer the upstream gives before the body is in, then serves the next request', async () => {
    let connections = 0;
    const early = await startUpstream(certs, (req, res) => res.end(`early ${req.url}`), {
      readBody: false,
    });
    early.server.on('secureConnection', () => (connections += 1));
    const gw = await startGateway(certs, { 'early.test': early.port });
    try {
      const w = await Wire.to(gw, 'early.test');
      await w.write('POST /big HTTP/1.1\r\nHost: early.test\r\nContent-Length: 2000000\r\n\r\n');
      expect(text(await w.read())).toBe('early /big');
      await w.write(Buffer.alloc(2_000_000, 1)); // the rest of the body nobody reads any more
      await w.write('GET /after HTTP/1.1\r\nHost: early.test\r\n\r\n');
      const after = await w.read('GET', 10_000);
      expect([after.status, text(after)]).toEqual([200, 'early /after']);
      // The upstream connection that answered early was out of step: a new one carried /after.
      expect(connections).toBe(2);
      w.destroy();
    } finally {
      await gw.close();
      await early.close();
    }
  });

  it('hands a POST to the Node path while a rule reads request bodies, and the rule sees the body', async () => {
    g.decider.set([
      {
        id: 'no-password',
        action: 'block',
        readsBody: true,
        when: (e) => reqOf(e)?.body.text.includes('hunter2') === true,
      },
    ]);
    try {
      const w = await Wire.to(g);
      await w.write(
        'POST /login HTTP/1.1\r\nHost: api.test\r\nContent-Length: 16\r\n\r\npassword=hunter2',
      );
      const r = await w.read();
      expect(r.status).toBe(403);
      expect(values(r, 'x-celgate-rule')).toEqual(['no-password']);
      w.destroy();
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
      const w = new Wire(net.connect(plain.port, '127.0.0.1'));
      await w.write('GET / HTTP/1.1\r\nHost: junk.test\r\n\r\n');
      const r = await w.read();
      expect(r.status).toBe(502);
      expect(text(r)).toMatch(/malformed response/);
      const rows = await plain.sink.waitNets(1);
      expect(rows[0]!.error).toBe('upstream_error');
      w.destroy();
    } finally {
      await plain.close();
      garbage.close();
    }
  });

  it('answers 502 when the upstream does not answer in time', async () => {
    const w = await Wire.to(g);
    await w.write('GET /silent HTTP/1.1\r\nHost: api.test\r\n\r\n');
    const r = await w.read();
    expect(r.status).toBe(502);
    expect(text(r)).toMatch(/did not answer within 300 ms/);
    w.destroy();
  });

  it('re-sends a GET once when its pooled connection turns out to be closed', async () => {
    let connections = 0;
    const flaky = await startUpstream(certs, (req, res) => res.end(`ok ${req.url}`));
    flaky.server.on('secureConnection', () => (connections += 1));
    const gw = await startGateway(certs, { 'flaky.test': flaky.port });
    try {
      const w = await Wire.to(gw, 'flaky.test');
      await w.write('GET /a HTTP/1.1\r\nHost: flaky.test\r\n\r\n');
      expect(text(await w.read())).toBe('ok /a');
      // The upstream drops its idle kept-alive connections without a word, as servers do.
      flaky.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
      await w.write('GET /b HTTP/1.1\r\nHost: flaky.test\r\n\r\n');
      const b = await w.read();
      expect([b.status, text(b)]).toEqual([200, 'ok /b']);
      expect(connections).toBe(2);
      w.destroy();
    } finally {
      await gw.close();
      await flaky.close();
    }
  });
});

describe('direct path deadlines', () => {
  it('closes a kept-alive connection left idle, quietly; a slow head after it is recorded', async () => {
    const gw = await startGateway(
      certs,
      { 'api.test': up.port },
      { limits: { keepAliveTimeoutMs: 150, headersTimeoutMs: 150 } },
    );
    try {
      const idle = await Wire.to(gw);
      await idle.write('GET /a HTTP/1.1\r\nHost: api.test\r\n\r\n');
      expect((await idle.read()).status).toBe(200);
      await idle.waitClosed(2000);
      expect(gw.sink.nets.map((r) => r.error)).toEqual([null]);

      const slow = await Wire.to(gw);
      await slow.write('GET /b HTTP/1.1\r\nHost: api.test\r\n\r\n');
      expect((await slow.read()).status).toBe(200);
      await slow.write('GET /c HTTP/1.1\r\nHo'); // never finished
      await slow.waitClosed(2000);
      const rows = await gw.sink.waitNets(3);
      expect(rows.map((r) => r.error)).toEqual([null, null, 'header_timeout']);
    } finally {
      await gw.close();
    }
  });
});

describe('direct path under random pipelines', () => {
  type Req = { kind: 'get' | 'head' | 'deny' | 'post' | 'chunked'; size: number };
  const wire = (r: Req, i: number): Buffer => {
    const path = `/${r.kind === 'deny' ? 'deny' : 'p'}${i}`;
    if (r.kind === 'get' || r.kind === 'deny')
      return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    if (r.kind === 'head') return Buffer.from(`HEAD ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    const body = Buffer.alloc(r.size, 0x61 + (i % 26));
    if (r.kind === 'post')
      return Buffer.concat([
        Buffer.from(`POST ${path} HTTP/1.1\r\nHost: api.test\r\nContent-Length: ${r.size}\r\n\r\n`),
        body,
      ]);
    const chunks = r.size === 0 ? '' : `${r.size.toString(16)}\r\n${body.toString()}\r\n`;
    return Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`,
    );
  };
  const expected = (r: Req, i: number): [number, string] => {
    if (r.kind === 'deny') return [403, ''];
    if (r.kind === 'head') return [200, ''];
    const path = `/p${i}`;
    return [200, r.kind === 'get' ? `GET ${path} 0` : `POST ${path} ${r.size}`];
  };
  const req = fc.record({
    kind: fc.constantFrom<Req['kind']>('get', 'get', 'head', 'deny', 'post', 'post', 'chunked'),
    size: fc.integer({ min: 0, max: 40_000 }),
  });

  it('answers every request in order, whatever the mix and however the bytes are split', async () => {
    g.decider.set([
      {
        id: 'deny-path',
        action: 'block',
        when: (e) => reqOf(e)?.path.startsWith('/deny') === true,
      },
    ]);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(req, { minLength: 1, maxLength: 8 }),
          fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 12 }),
          async (reqs, cuts) => {
            const bytes = Buffer.concat(reqs.map(wire));
            const w = await Wire.to(g);
            try {
              // The same bytes in pieces of the drawn sizes (the last piece takes the rest).
              let at = 0;
              for (const n of cuts) {
                if (at >= bytes.length) break;
                await w.write(bytes.subarray(at, at + n));
                at += n;
              }
              if (at < bytes.length) await w.write(bytes.subarray(at));
              for (const [i, r] of reqs.entries()) {
                const got = await w.read(r.kind === 'head' ? 'HEAD' : 'GET', 5000);
                const [status, body] = expected(r, i);
                expect(got.status, `request ${i} (${r.kind}, ${r.size})`).toBe(status);
                if (status === 200) expect(text(got)).toBe(body);
              }
            } finally {
              w.destroy();
            }
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      g.decider.set([]);
    }
  }, 60_000);

  it('after a good request, arbitrary bytes get a 4xx or a closed connection, and the gateway serves on', async () => {
    const junk = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
      // Near-misses of a request head: a real one with a byte changed.
      fc.tuple(fc.nat(60), fc.integer({ min: 0, max: 255 })).map(([at, byte]) => {
        const b = Buffer.from('POST /x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\n\r\nabc');
        b[at % b.length] = byte;
        return b;
      }),
    );
    await fc.assert(
      fc.asyncProperty(junk, async (bytes) => {
        const w = await Wire.to(g);
        try {
          await w.write(
            Buffer.concat([
              Buffer.from('GET /first HTTP/1.1\r\nHost: api.test\r\n\r\n'),
              bytes,
              Buffer.from('\r\n\r\n'),
            ]),
          );
          expect(text(await w.read())).toBe('GET /first 0');
          // Whatever the bytes were: an answer (4xx for garbage, or a 2xx for a valid mutation), or the
          // connection closes — within the deadline, and never a crash of the gateway.
          const next = await w.read('GET', 3000).catch(() => null);
          if (next !== null) expect(next.status).toBeGreaterThanOrEqual(200);
        } finally {
          w.destroy();
        }
        const fresh = await Wire.to(g);
        await fresh.write('GET /again HTTP/1.1\r\nHost: api.test\r\n\r\n');
        expect(text(await fresh.read())).toBe('GET /again 0');
        fresh.destroy();
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});

describe('direct: false', () => {
  it('serves every request on the Node path', async () => {
    const gw = await startGateway(certs, { 'api.test': up.port }, { direct: false });
    try {
      const w = await Wire.to(gw);
      await w.write(
        'GET /one HTTP/1.1\r\nHost: api.test\r\n\r\nGET /two HTTP/1.1\r\nHost: api.test\r\n\r\n',
      );
      expect((await readN(w, 2)).map(text)).toEqual(['GET /one 0', 'GET /two 0']);
      w.destroy();
    } finally {
      await gw.close();
    }
  });
});
