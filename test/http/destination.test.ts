import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import { parseHttpConfig } from '../../src/transport/http/config.js';
import {
  DestinationGuard,
  destinationGuard,
  parseAllowedRanges,
  parseCidr,
} from '../../src/transport/http/destination.js';
import { Upstream } from '../../src/transport/http/upstream.js';
import { UpstreamCall } from '../../src/transport/http/upstream-call.js';
import { UpstreamPool } from '../../src/transport/http/upstream-pool.js';
import {
  fetchVia,
  makeCerts,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream as TestUpstream,
} from '../../support/http-harness.js';

describe('destination guard: addresses', () => {
  const guard = new DestinationGuard();

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.200.1.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'CGNAT'],
    ['100.100.100.200', 'CGNAT'],
    ['0.0.0.0', 'this network'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fd00:ec2::254', 'unique-local'],
    ['fc00::1', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
  ])('refuses %s (%s)', (address, label) => {
    const v = guard.check(address);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.range.label).toContain(label);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '192.169.0.1',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
  ])('allows public %s', (address) => {
    expect(guard.check(address)).toEqual({ ok: true });
  });

  it('lets the operator open a range, and only that range', () => {
    const g = destinationGuard(['10.20.0.0/16', '::1']);
    expect(g.check('10.20.3.4').ok).toBe(true);
    expect(g.check('10.21.0.1').ok).toBe(false);
    expect(g.check('::1').ok).toBe(true);
    expect(g.check('127.0.0.1').ok).toBe(false);
  });

  it('parses CIDRs and bare addresses, and names bad entries', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseCidr('1.2.3.4')).toEqual({ address: '1.2.3.4', prefix: 32, family: 'ipv4' });
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0/8', '::/129', '1.2.3.4/x', ''])
      expect(parseCidr(bad)).toBeNull();
    const r = parseAllowedRanges(['10.0.0.0/8', 'nope']);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.issues).toEqual([
        { path: '[1]', message: expect.stringContaining('"nope" is not an IP range') },
      ]);
    expect(() => destinationGuard(['nope'])).toThrow(
      /http.allow_private_destinations: \[0\] "nope"/,
    );
  });

  it('its lookup fails a name that resolves only to refused addresses, naming host, address and range', async () => {
    const err = await new Promise<Error | null>((resolve) =>
      guard.lookup('localhost', { all: true }, (e: Error | null) => resolve(e)),
    );
    expect(isCelgateError(err, 'E_DESTINATION')).toBe(true);
    expect(err!.message).toMatch(
      /^localhost resolves to (127\.0\.0\.1|::1) \(loopback, (127\.0\.0\.0\/8|::1\/128)\)/,
    );
  });

  it('its lookup keeps the allowed addresses of a name', async () => {
    const g = destinationGuard(['127.0.0.0/8']);
    const out = await new Promise<unknown>((resolve, reject) =>
      g.lookup('localhost', { all: true }, (e: Error | null, a: unknown) =>
        e ? reject(e) : resolve(a),
      ),
    );
    expect(out).toEqual([{ address: '127.0.0.1', family: 4 }]);
    const one = await new Promise<unknown[]>((resolve, reject) =>
      g.lookup('localhost', { family: 4 }, (e: Error | null, ...rest: unknown[]) =>
        e ? reject(e) : resolve(rest),
      ),
    );
    expect(one).toEqual(['127.0.0.1', 4]);
  });
});

describe('destination guard: config and upstream', () => {
  it('http.allow_private_destinations is a list of ranges, checked at parse time', () => {
    expect(parseHttpConfig({}).allow_private_destinations).toEqual([]);
    expect(
      parseHttpConfig({ allow_private_destinations: ['10.0.0.0/8'] }).allow_private_destinations,
    ).toEqual(['10.0.0.0/8']);
    expect(() => parseHttpConfig({ allow_private_destinations: '10.0.0.0/8' }, 'gw.yaml')).toThrow(
      /gw.yaml: http.allow_private_destinations: must be a list/,
    );
    expect(() =>
      parseHttpConfig({ allow_private_destinations: ['10.0.0.0/40'] }, 'gw.yaml'),
    ).toThrow(/gw.yaml: http.allow_private_destinations: \[0\] "10.0.0.0\/40" is not an IP range/);
  });

  it("mapped destinations are the operator's and are not checked; others are", () => {
    const map = new Map([['api.test', { host: '127.0.0.1', port: 8443 }]]);
    const u = new Upstream({ map, timeoutMs: 1000 });
    try {
      expect(u.destination('api.test', 443)).toEqual({ host: '127.0.0.1', port: 8443 });
      expect(u.destination('example.com', 443).lookup).toBe(u.guard!.lookup);
      expect(u.destination('93.184.216.34', 443)).toEqual({ host: '93.184.216.34', port: 443 });
      const r = u.destination('169.254.169.254', 80);
      expect(isCelgateError(r.refused, 'E_DESTINATION')).toBe(true);
      expect(r.refused!.message).toMatch(/169\.254\.169\.254 \(link-local/);
    } finally {
      u.close();
    }
  });

  it.each(['https', 'http'] as const)(
    'an %s request to a refused literal errors with the refusal and connects nothing',
    async (scheme) => {
      const u = new Upstream({ timeoutMs: 1000 });
      const pool = new UpstreamPool(u);
      let connects = 0;
      const connect = u.connect.bind(u);
      u.connect = (...a) => (connects++, connect(...a));
      try {
        let answered = false;
        const req = new UpstreamCall(
          u,
          pool,
          {
            scheme,
            host: '10.0.0.1',
            port: 443,
            method: 'GET',
            path: '/',
            headers: ['host', '10.0.0.1'],
            bodyLength: 0,
          },
          { response: () => (answered = true) },
        );
        const err = await new Promise<Error>((resolve) => req.once('error', resolve));
        expect(isCelgateError(err, 'E_DESTINATION')).toBe(true);
        expect(err.message).toMatch(/^10\.0\.0\.1 \(private \(RFC 1918\), 10\.0\.0\.0\/8\)/);
        expect(connects).toBe(0);
        expect(answered).toBe(false);
      } finally {
        pool.close();
        u.close();
      }
    },
  );
});

describe('destination guard: through the gateway', () => {
  let certs: Certs;
  let up: TestUpstream;
  let plain: TestUpstream;
  let guarded: Gateway;
  let opened: Gateway;

  beforeAll(async () => {
    certs = await makeCerts();
    up = await startUpstream(certs, (_req, res) => res.end('secret from a loopback service'));
    plain = await startUpstream(null, (_req, res) => res.end('plain loopback service'));
    // No upstream map: `localhost` is resolved by the gateway, as any name a guest asks for.
    guarded = await startGateway(certs, {}, { httpsPort: up.port, httpPort: plain.port });
    opened = await startGateway(
      certs,
      {},
      {
        httpsPort: up.port,
        httpPort: plain.port,
        allowPrivateDestinations: ['127.0.0.0/8', '::1'],
      },
    );
  });
  afterAll(async () => {
    await guarded?.close();
    await opened?.close();
    await up?.close();
    await plain?.close();
    certs?.cleanup();
  });

  it('refuses an allowed name that resolves to loopback with a 403 naming host, address and range; nothing is connected', async () => {
    const seen = up.seen.length;
    const r = await fetchVia(guarded, 'https://localhost/metadata', {
      headers: { accept: 'application/json' },
    });
    expect(r.status).toBe(403);
    expect(r.headers.get('x-celgate-decision')).toBe('destination_blocked');
    const body = JSON.parse(r.text);
    expect(body).toMatchObject({
      error: 'destination_blocked',
      blocked: false,
      rule_id: 'celgate.destination-guard',
    });
    expect(body.reason).toMatch(/^localhost resolves to (127\.0\.0\.1|::1) \(loopback/);
    expect(body.retry).toMatch(/Retrying will not help/);
    expect(up.seen.length).toBe(seen);
    const rows = await guarded.sink.waitNets(1);
    // Recorded as what it is: a block by the destination guard, not the rules' allow.
    expect(rows.at(-1)).toMatchObject({
      host: 'localhost',
      decision: 'block',
      rule_id: 'celgate.destination-guard',
      status: 403,
      error: 'destination_blocked',
    });
    expect(rows.at(-1)!.reason).toMatch(/^localhost resolves to (127\.0\.0\.1|::1) \(loopback/);
    const guardDecisions = guarded.sink.decisions.filter(
      (d) => d.decision.rule_id === 'celgate.destination-guard',
    );
    expect(guardDecisions.at(-1)?.decision).toMatchObject({
      action: 'block',
      matches: [{ rule_id: 'celgate.destination-guard', decisive: true }],
    });
  });

  it('refuses a plain-HTTP IP literal before connecting', async () => {
    const seen = plain.seen.length;
    const s = net.connect({ host: '127.0.0.1', port: guarded.port });
    await new Promise((r) => s.once('connect', r));
    s.write(`GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);
    const text = await new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('close', () => resolve(out));
    });
    expect(text).toMatch(/^HTTP\/1\.1 403 /);
    expect(text).toMatch(/127\.0\.0\.1 \(loopback, 127\.0\.0\.0\/8\)/);
    expect(plain.seen.length).toBe(seen);
  });

  it('refuses a WebSocket upgrade to such a name the same way', async () => {
    const seen = up.seen.length;
    const s = await guarded.tlsConnect('localhost');
    s.write(
      'GET /ws HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n',
    );
    const text = await new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    expect(text).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(text).toMatch(/x-celgate-decision: destination_blocked/);
    expect(text).toMatch(/localhost resolves to/);
    expect(up.seen.length).toBe(seen);
  });

  it('the same requests reach the service when the operator allowed the range (so the guard was what refused)', async () => {
    const r = await fetchVia(opened, 'https://localhost/metadata');
    expect(r.status).toBe(200);
    expect(r.text).toBe('secret from a loopback service');
    const p = await fetchVia(opened, `http://127.0.0.1/x`);
    expect(p.status).toBe(200);
    expect(p.text).toBe('plain loopback service');
  });
});
