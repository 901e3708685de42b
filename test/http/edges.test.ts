import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  guestClient,
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
let rogueCerts: Certs;
let rogue: Upstream;

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part1-');
      setTimeout(() => res.end('part2'), 20);
      return;
    }
    if (req.url === '/empty') {
      res.writeHead(204, { 'x-upstream': 'yes' });
      res.end();
      return;
    }
    if (req.url === '/silent') return; // never answers
    if (req.url === '/slow-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders(); // the head leaves now; only the body is late
      setTimeout(() => res.end('late body'), 500);
      return;
    }
    if (req.url === '/hop') {
      res.end(
        JSON.stringify({
          keepAlive: req.headers['keep-alive'] ?? null,
          secretHop: req.headers['x-secret-hop'] ?? null,
          te: req.headers.te ?? null,
          host: req.headers.host,
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-length': '5' });
    res.end(req.method === 'HEAD' ? undefined : 'hello');
  });
  rogueCerts = await makeCerts();
  rogue = await startUpstream(rogueCerts, (_req, res) => res.end('should never be read'));
  g = await startGateway(certs, { 'api.test': up.port, 'rogue.test': rogue.port });
});
afterAll(async () => {
  await rogue?.close();
  rogueCerts?.cleanup();
  await g?.close();
  await up?.close();
  certs?.cleanup();
});

async function raw(request: string): Promise<string> {
  const s = await g.tlsConnect('api.test');
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.once('close', () => resolve(out));
    s.write(request);
  });
}

describe('HTTP edge cases through the gateway', () => {
  it('re-chunks a chunked upstream response', async () => {
    const c = guestClient(g, 'api.test');
    const r = await c.request({ path: '/chunked', method: 'GET' });
    expect(await r.body.text()).toBe('part1-part2');
    await c.close();
  });

  it('relays HEAD and 204 without inventing a body', async () => {
    const c = guestClient(g, 'api.test');
    const h = await c.request({ path: '/x', method: 'HEAD' });
    expect(h.statusCode).toBe(200);
    expect(h.headers['content-length']).toBe('5');
    expect(await h.body.text()).toBe('');
    const e = await c.request({ path: '/empty', method: 'GET' });
    expect(e.statusCode).toBe(204);
    expect(e.headers['x-upstream']).toBe('yes');
    await e.body.text();
    await c.close();
  });

  it('does not forward hop-by-hop headers and sets Host to the judged host', async () => {
    const out = await raw(
      'GET /hop HTTP/1.1\r\nHost: api.test\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n',
    );
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
    expect(body).toEqual({ keepAlive: null, secretHop: null, te: null, host: 'api.test' });
  });

  it('answers a request target upstream would refuse with a 502 instead of crashing', async () => {
    const before = g.sink.nets.length;
    const out = await raw(
      'GET /bad\u00ffpath HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 (400|502)/);
    await g.sink.waitNets(before + 1);
    const c = guestClient(g, 'api.test');
    const r = await c.request({ path: '/x', method: 'GET' });
    expect(r.statusCode).toBe(200);
    await r.body.text();
    await c.close();
  });

  it('serves pipelined requests in order on one connection', async () => {
    const out = await raw(
      'GET /a HTTP/1.1\r\nHost: api.test\r\n\r\nGET /b HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
  });

  it('answers 502 when the upstream sends no response head within upstream_ms, and the body after a head may take longer', async () => {
    const quick = await startGateway(
      certs,
      { 'api.test': up.port },
      { limits: { upstreamTimeoutMs: 300 } },
    );
    try {
      const c = guestClient(quick, 'api.test');
      const t0 = Date.now();
      const r = await c.request({ path: '/silent', method: 'GET' });
      expect(r.statusCode).toBe(502);
      expect(await r.body.text()).toMatch(/did not answer within 300 ms/);
      expect(Date.now() - t0).toBeLessThan(5000);
      const late = await c.request({ path: '/slow-body', method: 'GET' });
      expect(late.statusCode).toBe(200);
      expect(await late.body.text()).toBe('late body');
      await c.close();
      await quick.sink.waitNets(2);
      expect(quick.sink.nets[0]).toMatchObject({
        path: '/silent',
        error: 'upstream_error',
        status: 502,
      });
      expect(quick.sink.nets[1]).toMatchObject({ path: '/slow-body', error: null, status: 200 });
    } finally {
      await quick.close();
    }
  });

  it('refuses an upstream whose certificate no trusted CA signed: 502, nothing relayed', async () => {
    const c = guestClient(g, 'rogue.test');
    const r = await c.request({ path: '/', method: 'GET' });
    expect(r.statusCode).toBe(502);
    const text = await r.body.text();
    expect(text).not.toContain('should never be read');
    expect(text).toMatch(/certificate|self.signed|issuer/i);
    await c.close();
    expect(g.sink.nets.at(-1)).toMatchObject({
      host: 'rogue.test',
      error: 'upstream_error',
      status: 502,
    });
  });
});
