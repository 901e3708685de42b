/**
 * The fast HTTP paths when a decision is held although they did not expect it (an `ask` rule
 * installed, or an approver arriving, between the fast path's check and the decision): the direct
 * HTTP/1.1 path keeps a held request's body and the requests pipelined behind it in order, and the
 * pooled HTTP/2 path answers a held stream once the answer comes. The decider here holds every
 * request to `held.test` and never says `mayAsk`, which is exactly that race.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision, HttpRequestEvent, SecurityEvent } from '../../src/events/index.js';
import {
  makeCerts,
  ScriptedDecider,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';

/** Holds every request to held.test until `release(answer)`. */
class HoldingDecider extends ScriptedDecider {
  waiting: ((allow: boolean) => void)[] = [];
  override decide(event: SecurityEvent): Decision {
    const d = super.decide(event);
    const host =
      event.common.event_type === 'http.request'
        ? (event as HttpRequestEvent).http.request.host
        : '';
    return host === 'held.test'
      ? { ...d, action: 'block', rule_id: 'ask-held', reason: 'needs approval', ask: true }
      : d;
  }
  hold = (_e: SecurityEvent, d: Decision): Promise<Decision> =>
    new Promise((resolve) => {
      this.waiting.push((allow) =>
        resolve(allow ? { ...d, action: 'allow', reason: 'approved' } : { ...d, reason: 'denied' }),
      );
    });
  async release(allow: boolean): Promise<void> {
    for (let i = 0; i < 200 && this.waiting.length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(this.waiting.length).toBeGreaterThan(0);
    this.waiting.shift()!(allow);
  }
}

let certs: Certs;
let up: Upstream;
let gw: Gateway;
const decider = new HoldingDecider();

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res, body) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${req.method} ${req.url} ${body.length}`);
  });
  gw = await startGateway(
    certs,
    { 'held.test': up.port, 'free.test': up.port },
    {},
    decider as unknown as ScriptedDecider,
  );
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  certs?.cleanup();
});

/** Writes `bytes` on one TLS connection with SNI held.test and reads until `responses` answers. */
async function pipeline(bytes: string, responses: number, during: () => Promise<void>) {
  const s = await gw.tlsConnect('held.test');
  let out = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => (out += c));
  s.write(bytes);
  await during();
  for (let i = 0; i < 400 && out.split('HTTP/1.1 ').length - 1 < responses; i++)
    await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  return out;
}

describe('a held decision on the fast HTTP paths', () => {
  it('direct HTTP/1.1: forwards the held POST body whole, then the pipelined request', async () => {
    const body = 'b'.repeat(50_000);
    const out = await pipeline(
      `POST /upload HTTP/1.1\r\nHost: held.test\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `GET /after HTTP/1.1\r\nHost: held.test\r\n\r\n`,
      2,
      async () => {
        await decider.release(true);
        await decider.release(true);
      },
    );
    const first = out.indexOf('POST /upload 50000');
    const second = out.indexOf('GET /after 0');
    expect(first, out).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(first);
  });

  it('direct HTTP/1.1: a denied held POST is answered 403 and the next request still works', async () => {
    const out = await pipeline(
      `POST /no HTTP/1.1\r\nHost: held.test\r\nContent-Length: 5\r\n\r\nhello` +
        `GET /next HTTP/1.1\r\nHost: held.test\r\n\r\n`,
      2,
      async () => {
        await decider.release(false);
        await decider.release(true);
      },
    );
    expect(out).toMatch(/^HTTP\/1\.1 403/);
    expect(out).toContain('GET /next 0');
    expect(up.seen.some((x) => x.url === '/no')).toBe(false);
  });

  it('pooled HTTP/2: answers a held bodiless stream once it is allowed', async () => {
    const socket = net.connect(gw.port, '127.0.0.1');
    const session = http2.connect('https://held.test', {
      createConnection: () =>
        tls.connect({ socket, servername: 'held.test', ca: certs.caPem, ALPNProtocols: ['h2'] }),
    });
    session.on('error', () => {});
    try {
      const got = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/h2', ':method': 'GET' });
        let status = 0;
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      await decider.release(true);
      expect(await got).toEqual({ status: 200, body: 'GET /h2 0' });
    } finally {
      session.close();
    }
  });
});
