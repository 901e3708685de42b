/**
 * The explicit proxy inside the real built gateway (`celgate start`): the startup lines, curl and
 * Node fetch through `http.proxy`, a CEL rule installed through the control API taking effect on
 * an open tunnel, and the ledger rows in session.db.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { clientOver, curl, hasCurl, tlsThroughTunnel } from '../../support/proxy-clients.js';

let upstreamCerts: Certs;
let up: Upstream;
let gw: RunningTestGateway;
let proxyPort: number;
let caFile: string;
let caPem: string;

beforeAll(async () => {
  upstreamCerts = await makeCerts();
  up = await startUpstream(upstreamCerts, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`upstream saw ${req.method} ${req.headers.host} ${req.url}`);
  });
  const upstreamCa = join(upstreamCerts.dir, 'upstream-ca.pem');
  writeFileSync(upstreamCa, upstreamCerts.caPem);
  caFile = join(upstreamCerts.dir, 'gw-certs', 'ca.cert.pem');
  gw = await startGateway({
    config: {
      http: {
        proxy: '127.0.0.1:0',
        ca_dir: join(upstreamCerts.dir, 'gw-certs'),
        upstream_map: { 'api.test': `127.0.0.1:${up.port}` },
        extra_ca: [upstreamCa],
      },
    },
  });
  proxyPort = Number(gw.listeners.proxy!.split(':').pop());
  caPem = readFileSync(caFile, 'utf8');
});
afterAll(async () => {
  await gw?.stop();
  await up?.close();
  upstreamCerts?.cleanup();
});

describe('celgate start with the explicit proxy', () => {
  it('prints how to trust the CA, the proxy address and where the ledger is', async () => {
    // stderr and the stdout "ready" line travel on different pipes: wait for the lines to arrive.
    for (let i = 0; i < 100 && !gw.stderr().includes('celgate: ledger:'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const err = gw.stderr();
    expect(err).toContain(`NODE_EXTRA_CA_CERTS=${caFile}`);
    expect(err).toContain(`HTTPS_PROXY=http://127.0.0.1:${proxyPort}`);
    expect(err).toContain(`ledger: ${gw.sessionDb}`);
  });

  it('reports the proxy address in /v1/health listeners', async () => {
    const h = await gw.api('GET', '/v1/health');
    expect(h.status).toBe(200);
    expect(h.text).toContain(`"proxy":"127.0.0.1:${proxyPort}"`);
  });

  it.skipIf(!hasCurl)(
    'forwards curl through the proxy with the gateway CA (needs curl)',
    async () => {
      const r = await curl([
        '-x',
        `http://127.0.0.1:${proxyPort}`,
        '--cacert',
        caFile,
        'https://api.test/public',
      ]);
      expect(r.stdout).toBe('upstream saw GET api.test /public');
    },
  );

  it('applies a rule installed through the control API to the next request on an open tunnel', async () => {
    const socket = await tlsThroughTunnel(proxyPort, 'api.test:443', caPem, 'api.test');
    const c = clientOver('https://api.test', socket);
    try {
      const a = await c.request({ path: '/admin/before', method: 'GET' });
      expect(a.statusCode).toBe(200);
      await a.body.text();
      const put = await gw.api('PUT', '/v1/rules/proxy-no-admin', {
        description: 'no admin paths',
        condition: 'http.request.path.startsWith("/admin")',
        action: 'block',
        reason: 'admin endpoints are off limits',
        priority: 0,
      });
      expect(put.status).toBe(201);
      const b = await c.request({
        path: '/admin/users',
        method: 'GET',
        headers: { accept: 'application/json' },
      });
      expect(b.statusCode).toBe(403);
      expect(await b.body.json()).toMatchObject({ rule_id: 'proxy-no-admin' });
      expect(c.connects()).toBe(1);
    } finally {
      await c.close();
    }
  });

  it('serves Node fetch through ProxyAgent and blocks by the installed rule', async () => {
    const agent = new ProxyAgent({
      uri: `http://127.0.0.1:${proxyPort}`,
      requestTls: { ca: caPem },
    });
    try {
      const ok = await undiciFetch('https://api.test/fine', { dispatcher: agent });
      expect(await ok.text()).toBe('upstream saw GET api.test /fine');
      const no = await undiciFetch('https://api.test/admin/x', { dispatcher: agent });
      expect(no.status).toBe(403);
      expect(await no.text()).toMatch(/proxy-no-admin/);
    } finally {
      await agent.close();
    }
  });

  it('records net_events and security_events rows for proxied requests', async () => {
    expect(await gw.stop()).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const blocked = db
        .prepare("SELECT * FROM net_events WHERE rule_id = 'proxy-no-admin'")
        .all() as any[];
      expect(blocked).toHaveLength(2);
      expect(blocked[0]).toMatchObject({
        decision: 'block',
        status: 403,
        host: 'api.test',
        sni: 'api.test',
        scheme: 'https',
      });
      expect(
        db.prepare("SELECT * FROM security_events WHERE rule_id = 'proxy-no-admin'").all(),
      ).toHaveLength(2);
      expect(
        db.prepare("SELECT * FROM net_events WHERE path = '/fine' AND status = 200").all(),
      ).toHaveLength(1);
    } finally {
      db.close();
    }
  });
});
