import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import {
  guestClient,
  makeCerts,
  reqOf,
  startGateway,
  startUpstream,
  fetchVia,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';

let certs: Certs;
let up: Upstream;
let g: Gateway;

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res, body) => {
    if (req.url === '/gzip') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      res.end(gzipSync('compressed hello'));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
    res.end(JSON.stringify({ url: req.url, host: req.headers.host, body: body.toString() }));
  });
  g = await startGateway(certs, { 'api.test': up.port, 'evil.test': up.port });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
  certs?.cleanup();
});

describe('HTTPS interception through the vsock port', () => {
  it('forwards an allowed GET and records one decision and one net row', async () => {
    const before = g.sink.nets.length;
    const r = await fetchVia(g, 'https://api.test/hello?x=1');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ url: '/hello?x=1', host: 'api.test' });
    const rows = await g.sink.waitNets(before + 1);
    const row = rows[before]!;
    expect(row).toMatchObject({
      scheme: 'https',
      method: 'GET',
      host: 'api.test',
      port: 443,
      path: '/hello',
      query: 'x=1',
      sni: 'api.test',
      status: 200,
      decision: 'allow',
      error: null,
    });
    expect(row.bytes_out).toBeGreaterThan(0);
    const d = g.sink.decisions.find((x) => x.event.common.event_id === row.event_id);
    expect(d?.event.common.event_type).toBe('http.request');
  });

  it('answers a blocked request with a JSON 403 naming the rule, without contacting upstream', async () => {
    g.decider.set([
      {
        id: 'no-evil',
        action: 'block',
        reason: 'evil.test is an exfil endpoint',
        when: (e) => reqOf(e)?.host === 'evil.test',
      },
    ]);
    const seen = up.seen.length;
    const r = await fetchVia(g, 'https://evil.test/steal', {
      headers: { accept: 'application/json' },
    });
    expect(r.status).toBe(403);
    const body = JSON.parse(r.text);
    expect(body).toMatchObject({
      blocked: true,
      rule_id: 'no-evil',
      reason: 'evil.test is an exfil endpoint',
    });
    expect(body.retry).toMatch(/Retrying will not help/);
    expect(up.seen.length).toBe(seen);
    const text = await fetchVia(g, 'https://evil.test/steal');
    expect(text.text).toMatch(/rule no-evil/);
    expect(text.text).toMatch(/Retrying will not help/);
    g.decider.set([]);
  });

  it('answers 502 and never forwards when the engine throws', async () => {
    g.decider.set([{ id: 'boom', action: 'throw', when: () => true }]);
    const seen = up.seen.length;
    const r = await fetchVia(g, 'https://api.test/x');
    expect(r.status).toBe(502);
    expect(r.text).toMatch(/failed closed|policy engine failed/);
    expect(up.seen.length).toBe(seen);
    const last = g.sink.decisions.at(-1)!;
    expect(last.decision).toMatchObject({ action: 'error', mode: 'fail_closed' });
    g.decider.set([]);
  });

  it('reuses one kept-alive connection across an allowed and a blocked request', async () => {
    g.decider.set([
      {
        id: 'no-admin',
        action: 'block',
        when: (e) => reqOf(e)?.path.startsWith('/admin') === true,
      },
    ]);
    const client = new Client('https://api.test', {
      connect: (opts, cb) =>
        void g.tlsConnect('api.test').then(
          (s) => cb(null, s),
          (e: Error) => cb(e, null),
        ),
    });
    let connects = 0;
    client.on('connect', () => (connects += 1));
    const a = await client.request({ path: '/ok', method: 'GET' });
    expect(a.statusCode).toBe(200);
    await a.body.text();
    const b = await client.request({ path: '/admin/users', method: 'GET' });
    expect(b.statusCode).toBe(403);
    await b.body.text();
    const c = await client.request({ path: '/ok2', method: 'GET' });
    expect(c.statusCode).toBe(200);
    await c.body.text();
    expect(connects).toBe(1);
    await client.close();
    g.decider.set([]);
  });

  it('applies a rule change to the next request on an open keep-alive connection', async () => {
    const client = new Client('https://api.test', {
      connect: (opts, cb) =>
        void g.tlsConnect('api.test').then(
          (s) => cb(null, s),
          (e: Error) => cb(e, null),
        ),
    });
    const a = await client.request({ path: '/one', method: 'GET' });
    expect(a.statusCode).toBe(200);
    await a.body.text();
    g.decider.set([{ id: 'now-blocked', action: 'block', when: () => true }]);
    const b = await client.request({ path: '/two', method: 'GET' });
    expect(b.statusCode).toBe(403);
    expect(await b.body.text()).toMatch(/now-blocked/);
    await client.close();
    g.decider.set([]);
  });

  it('judges by SNI when the Host header names another host, and records the mismatch', async () => {
    g.decider.set([
      { id: 'no-evil', action: 'block', when: (e) => reqOf(e)?.host === 'evil.test' },
    ]);
    const before = g.sink.nets.length;
    const client = guestClient(g, 'evil.test');
    const r = await client.request({ path: '/x', method: 'GET', headers: { host: 'api.test' } });
    expect(r.statusCode).toBe(403);
    await r.body.text();
    await client.close();
    const rows = await g.sink.waitNets(before + 1);
    expect(rows[before]).toMatchObject({
      host: 'evil.test',
      sni: 'evil.test',
      host_header_mismatch: 'api.test',
      status: 403,
      rule_id: 'no-evil',
    });
    g.decider.set([]);
  });

  it('passes a gzip response through unaltered', async () => {
    const r = await fetchVia(g, 'https://api.test/gzip');
    expect(r.status).toBe(200);
    expect(r.text).toBe('compressed hello');
    expect(r.headers.get('content-encoding')).toBe('gzip');
  });

  it('blocks a POST whose body a rule reads, and forwards an innocent one whole', async () => {
    g.decider.set([
      {
        id: 'no-secrets',
        action: 'block',
        readsBody: true,
        when: (e) => reqOf(e)?.body.text.includes('secret') === true,
      },
    ]);
    const seen = up.seen.length;
    const bad = await fetchVia(g, 'https://api.test/upload', {
      method: 'POST',
      body: 'my secret token',
    });
    expect(bad.status).toBe(403);
    expect(up.seen.length).toBe(seen);
    const ok = await fetchVia(g, 'https://api.test/upload', {
      method: 'POST',
      body: 'hello world',
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text).body).toBe('hello world');
    const gz = await fetchVia(g, 'https://api.test/upload', {
      method: 'POST',
      body: gzipSync('gzipped secret'),
      headers: { 'content-encoding': 'gzip' },
    });
    expect(gz.status).toBe(403);
    g.decider.set([]);
  });

  it('streams a body no rule reads without buffering it for rules', async () => {
    const r = await fetchVia(g, 'https://api.test/upload', {
      method: 'POST',
      body: 'x'.repeat(100_000),
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).body.length).toBe(100_000);
    const ev = g.decider.decided.filter((e) => e.common.event_type === 'http.request').at(-1)!;
    expect(reqOf(ev)?.body.state).toBe('streamed');
  });

  it('answers 502 when the upstream is down and keeps the connection usable', async () => {
    const g2 = await startGateway(certs, { 'api.test': up.port, 'down.test': 1 });
    try {
      const client = new Client('https://down.test', {
        connect: (opts, cb) =>
          void g2.tlsConnect('down.test').then(
            (s) => cb(null, s),
            (e: Error) => cb(e, null),
          ),
      });
      let connects = 0;
      client.on('connect', () => (connects += 1));
      const a = await client.request({ path: '/', method: 'GET' });
      expect(a.statusCode).toBe(502);
      expect(await a.body.text()).toMatch(/could not reach|failed/);
      const b = await client.request({ path: '/again', method: 'GET' });
      expect(b.statusCode).toBe(502);
      await b.body.text();
      expect(connects).toBe(1);
      await client.close();
      const rows = await g2.sink.waitNets(2);
      expect(rows[0]).toMatchObject({ error: 'upstream_error', status: 502, decision: 'allow' });
    } finally {
      await g2.close();
    }
  });

  it('keeps repeated set-cookie headers', async () => {
    const r = await fetchVia(g, 'https://api.test/c');
    expect(r.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
  });
});
