/**
 * The HTTP pipeline inside the real built gateway (`celgate start`): curl and undici through the
 * vsock TCP port, rules installed through the control API (CEL, the real engine), the ledger.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { Client } from 'undici';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway as startRealGateway, type RunningTestGateway } from '../support/gateway.js';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';

const run = promisify(execFile);
const haveCurl = await run('curl', ['--version']).then(
  () => true,
  () => false,
);
const MIB = 1024 * 1024;

let upstreamCerts: Certs;
let up: Upstream;
let gw: RunningTestGateway;
let port: number;
let caFile: string;

function vmKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

function client(host: string): Client & { connects: number } {
  const ca = readFileSync(caFile, 'utf8');
  const c = new Client(`https://${host}`, {
    connect: (_o, cb) => {
      c.connects += 1;
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: host,
        ca,
        ALPNProtocols: ['http/1.1'],
      });
      s.once('secureConnect', () => cb(null, s));
      s.once('error', (e) => cb(e, null));
    },
  }) as Client & { connects: number };
  c.connects = 0;
  return c;
}

beforeAll(async () => {
  upstreamCerts = await makeCerts();
  up = await startUpstream(upstreamCerts, (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': String(64 * MIB) });
      const chunk = Buffer.alloc(MIB, 0x62);
      let sent = 0;
      const pump = () => {
        while (sent < 64 * MIB) {
          sent += MIB;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`upstream saw ${req.method} ${req.headers.host} ${req.url}`);
  });
  const upstreamCa = join(upstreamCerts.dir, 'upstream-ca.pem');
  writeFileSync(upstreamCa, upstreamCerts.caPem);
  const dataDir = upstreamCerts.dir;
  gw = await startRealGateway({
    config: {
      http: {
        ca_dir: join(dataDir, 'gw-certs'),
        upstream_map: { 'api.test': `127.0.0.1:${up.port}`, 'files.test': `127.0.0.1:${up.port}` },
        extra_ca: [upstreamCa],
      },
    },
  });
  port = Number(gw.listeners.http!.split(':').pop());
  caFile = join(dataDir, 'gw-certs', 'ca.cert.pem');
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  upstreamCerts?.cleanup();
});

describe('HTTPS interception in celgate start', () => {
  it('reports the http listener in /v1/health', async () => {
    const h = await gw.api('GET', '/v1/health');
    expect(h.json.listeners.http).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it.skipIf(!haveCurl)(
    'serves curl through the vsock port with --connect-to, trusting the gateway CA',
    async () => {
      const { stdout } = await run('curl', [
        '-sS',
        '--cacert',
        caFile,
        '--connect-to',
        `api.test:443:127.0.0.1:${port}`,
        'https://api.test/curl?x=1',
      ]);
      expect(stdout).toBe('upstream saw GET api.test /curl?x=1');
    },
  );

  it('applies a rule installed through the control API on an already open keep-alive connection', async () => {
    const c = client('api.test');
    const a = await c.request({ path: '/admin/ok-before', method: 'GET' });
    expect(a.statusCode).toBe(200);
    await a.body.text();
    const put = await gw.api('PUT', '/v1/rules/http-no-admin', {
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
    expect(await b.body.json()).toMatchObject({
      rule_id: 'http-no-admin',
      reason: expect.stringContaining('admin endpoints are off limits'),
    });
    const d = await c.request({ path: '/public', method: 'GET' });
    expect(d.statusCode).toBe(200);
    await d.body.text();
    expect(c.connects).toBe(1);
    await c.close();
  });

  it('buffers and judges a request body only once a rule reads body', async () => {
    const put = await gw.api('PUT', '/v1/rules/http-no-secret-body', {
      description: 'no secrets in bodies',
      condition: 'http.request.body.text.contains("secret")',
      action: 'block',
      reason: 'request body carries a secret',
      priority: 0,
    });
    expect(put.status).toBe(201);
    const c = client('api.test');
    const bad = await c.request({ path: '/upload', method: 'POST', body: 'my secret value' });
    expect(bad.statusCode).toBe(403);
    expect(await bad.body.text()).toContain('http-no-secret-body');
    const ok = await c.request({ path: '/upload', method: 'POST', body: 'harmless' });
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    await c.close();
    await gw.api('DELETE', '/v1/rules/http-no-secret-body');
  });

  it('streams a 64 MiB download while the gateway process stays bounded in memory', async () => {
    const pid = gw.process.pid!;
    const before = vmKb(pid, 'VmRSS');
    const c = client('files.test');
    const res = await c.request({ path: '/big', method: 'GET' });
    const hash = createHash('sha256');
    let n = 0;
    for await (const chunk of res.body) {
      hash.update(chunk as Uint8Array);
      n += (chunk as Uint8Array).length;
    }
    await c.close();
    expect(n).toBe(64 * MIB);
    expect(hash.digest('hex')).toBe(
      createHash('sha256')
        .update(Buffer.alloc(64 * MIB, 0x62))
        .digest('hex'),
    );
    const peakGrowthMiB = (vmKb(pid, 'VmHWM') - before) / 1024;
    expect(peakGrowthMiB).toBeLessThan(48);
  });

  it('records net_events and security_events rows with the deciding rule', async () => {
    expect(await gw.stop()).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const blocked = db
        .prepare("SELECT * FROM net_events WHERE rule_id = 'http-no-admin'")
        .all() as any[];
      expect(blocked).toHaveLength(1);
      expect(blocked[0]).toMatchObject({
        decision: 'block',
        status: 403,
        host: 'api.test',
        path: '/admin/users',
        sni: 'api.test',
        scheme: 'https',
      });
      const events = db
        .prepare("SELECT * FROM security_events WHERE rule_id = 'http-no-admin'")
        .all();
      expect(events).toHaveLength(1);
      const allowed = db
        .prepare("SELECT * FROM net_events WHERE path = '/public' AND status = 200")
        .all();
      expect(allowed).toHaveLength(1);
    } finally {
      db.close();
    }
  });
});
