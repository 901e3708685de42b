/**
 * The destination guard in explicit proxy mode — where it matters most: an agent on the host with
 * HTTPS_PROXY set can name any host, and the host's own services listen on loopback. A name that
 * resolves to loopback (or a loopback literal) is refused whatever the rules say; the upstream map
 * (the operator's choice) still reaches loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clientOver,
  curl,
  hasCurl,
  rawExchange,
  tlsThroughTunnel,
} from '../../support/proxy-clients.js';
import { startProxyRig, type ProxyRig } from '../../support/proxy-rig.js';

let rig: ProxyRig;

beforeAll(async () => {
  rig = await startProxyRig();
});
afterAll(async () => {
  await rig?.close();
});

describe('explicit proxy: destination guard', () => {
  it('refuses a plain proxy request to a loopback literal with a 403 naming the range; the service sees nothing', async () => {
    const seen = rig.plain.seen.length;
    const out = await rawExchange(
      rig.port,
      `GET http://127.0.0.1:${rig.plain.port}/admin HTTP/1.1\r\nHost: 127.0.0.1:${rig.plain.port}\r\nConnection: close\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 403 /);
    expect(out).toMatch(/x-celgate-decision: destination_blocked/i);
    expect(out).toMatch(/127\.0\.0\.1 \(loopback, 127\.0\.0\.0\/8\)/);
    expect(rig.plain.seen.length).toBe(seen);
    const rows = await rig.sink.waitNets(1);
    expect(rows.at(-1)).toMatchObject({
      host: '127.0.0.1',
      port: rig.plain.port,
      decision: 'block',
      rule_id: 'celgate.destination-guard',
      status: 403,
      error: 'destination_blocked',
    });
  });

  it('refuses a CONNECT tunnel to a name that resolves to loopback, inside the tunnel', async () => {
    const seen = rig.https.seen.length;
    const s = await tlsThroughTunnel(
      rig.port,
      `localhost:${rig.https.port}`,
      rig.gatewayCerts.caPem,
      'localhost',
    );
    const client = clientOver(`https://localhost:${rig.https.port}`, s);
    try {
      const r = await client.request({
        path: '/secret',
        method: 'GET',
        headers: { accept: 'application/json' },
      });
      expect(r.statusCode).toBe(403);
      const body = (await r.body.json()) as { error: string; reason: string };
      expect(body.error).toBe('destination_blocked');
      expect(body.reason).toMatch(/^localhost resolves to (127\.0\.0\.1|::1) \(loopback/);
    } finally {
      await client.close();
    }
    expect(rig.https.seen.length).toBe(seen);
  });

  it.skipIf(!hasCurl)('curl through the proxy gets the 403 too', async () => {
    const r = await curl([
      '-x',
      rig.proxyUrl,
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      `http://localhost:${rig.plain.port}/`,
    ]);
    expect(r.stdout.trim().split('\n').pop()).toBe('403');
    expect(r.stdout).toMatch(
      /Destination refused by celgate \(rule celgate\.destination-guard\): localhost resolves to/,
    );
  });

  it('mapped hosts still reach their loopback upstreams (the operator chose them)', async () => {
    const out = await rawExchange(
      rig.port,
      `GET http://plain.test/ok HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
  });
});
