/**
 * A running gateway with regex rules that stall backtracking engines, and a request whose path is
 * 64 KiB of input chosen to trigger them: the request gets its answer, and a DNS query sent at the
 * same moment to the same gateway is answered too. A liveness check with a generous bound, not a
 * speed gate (bench/policy.ts measures the time per evaluation).
 */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';

const LIVENESS_MS = 10_000;
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup) await c().catch(() => {});
});

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms),
    ),
  ]);
}

/** Sends one raw HTTP/1.1 request and resolves with the status line. */
function rawGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () =>
      s.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`),
    );
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('end', () => resolve(got.split('\r\n')[0]!));
    s.on('error', reject);
  });
}

function dnsQuery(port: number, name: string): Promise<string> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.on('message', (m) => {
      s.close();
      resolve((dnsPacket.decode(m) as unknown as { rcode: string }).rcode);
    });
    s.send(
      dnsPacket.encode({
        type: 'query',
        id: 7,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name }],
      }),
      port,
      '127.0.0.1',
    );
  });
}

describe('regex rules cannot stall the gateway', () => {
  let gw: RunningTestGateway;
  let upstream: http.Server;

  it('answers a 64 KiB adversarial path and a DNS query sent at the same moment', async () => {
    upstream = http.createServer({ maxHeaderSize: 256 * 1024 }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise((r) => upstream.close(r)));
    const up = (upstream.address() as AddressInfo).port;
    gw = await startGateway({
      config: {
        http: {
          upstream_map: { 'app.test': `127.0.0.1:${up}` },
          max_request_target: 128 * 1024,
          max_header_bytes: 160 * 1024,
        },
        dns: { listen: '127.0.0.1:0', upstreams: [], static: { 'ok.test': ['192.0.2.1'] } },
      },
    });
    cleanup.push(() => gw.stop());
    const rules: [string, string][] = [
      ['exp-dotstar', '.*.*.*.*.*.*.*.*.*x$'],
      ['exp-counted', '(a{1,30}){1,30}$'],
      ['exp-star', 'a*a*a*a*a*a*a*a*a*b'],
      ['exp-word', '\\\\w*\\\\w*\\\\w*\\\\w*\\\\w*\\\\w*\\\\w*!'],
      ['poly', 'a.*a.*b'],
    ];
    for (const [id, pattern] of rules) {
      const r = await gw.api('PUT', `/v1/rules/${id}`, {
        condition: `http.request.path.matches("${pattern}")`,
        action: 'block',
        mode: 'shadow',
        reason: 'adversarial pattern',
      });
      expect(r.status, r.text).toBeLessThan(300);
    }
    const path = `/${'a'.repeat(64 * 1024 - 1)}`;
    const dnsPort = Number(gw.listeners.dns_udp!.split(':')[1]);
    const [status, rcode] = await Promise.all([
      within(
        LIVENESS_MS,
        'the adversarial request',
        rawGet(Number(gw.listeners.http!.split(':')[1]), path),
      ),
      within(LIVENESS_MS, 'the DNS query', dnsQuery(dnsPort, 'ok.test')),
    ]);
    // Shadow rules: every one ran on the path, none changed the outcome; the request was forwarded.
    expect(status).toBe('HTTP/1.1 200 OK');
    expect(rcode).toBe('NOERROR');
    const listed = (await gw.api('GET', '/v1/rules')).json.rules as {
      id: string;
      counters: { evaluations: number; matches: number };
    }[];
    const counters = Object.fromEntries(
      listed.filter((r) => rules.some(([id]) => id === r.id)).map((r) => [r.id, r.counters]),
    );
    for (const [id] of rules) expect(counters[id]?.evaluations, id).toBe(1);
    // Only (a{1,30}){1,30}$ matches a path of a's (its last 900 a's); the others need an x, a b or a !.
    expect(
      Object.entries(counters)
        .filter(([, c]) => c.matches === 1)
        .map(([id]) => id),
    ).toEqual(['exp-counted']);
  });
});
