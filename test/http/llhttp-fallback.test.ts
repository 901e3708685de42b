/**
 * The direct path stands on llhttp reached through Node's private `_http_common`. When it is
 * missing or changed (forced here with CELGATE_HTTP_NO_LLHTTP=1), a real gateway says so in one
 * log line and serves every HTTP/1.1 request on the public-API path (Node's http.Server) — GETs,
 * bodies, denials — on the vsock port and through the explicit proxy.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_LLHTTP_ENV } from '../../src/transport/http/llhttp.js';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;

describe.skipIf(!HAVE_CURL)(`a gateway with ${NO_LLHTTP_ENV}=1`, () => {
  let certs: Certs;
  let up: Upstream;
  let gw: RunningTestGateway;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-nollhttp-'));
    certs = await makeCerts();
    writeFileSync(join(dir, 'up-ca.pem'), certs.caPem);
    writeFileSync(
      join(dir, 'rules.yaml'),
      'id: fallback\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-admin\n    condition: http.request.path.startsWith("/admin")\n    action: block\n',
    );
    up = await startUpstream(certs, (req, res, body) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, body: body.toString() }));
    });
    gw = await startGateway({
      env: { [NO_LLHTTP_ENV]: '1' },
      config: {
        rules: [join(dir, 'rules.yaml')],
        http: {
          ca_dir: join(dir, 'certs'),
          extra_ca: [join(dir, 'up-ca.pem')],
          upstream_map: { 'api.test': `127.0.0.1:${(up.server.address() as AddressInfo).port}` },
        },
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    certs?.cleanup();
  });

  it('logs one line naming the fallback for each HTTP entry', () => {
    const lines = gw
      .logs()
      .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('http.direct_unavailable'));
    expect(lines.map((l) => l.service).sort()).toEqual(['http', 'proxy']);
    expect(lines[0].msg).toContain(`${NO_LLHTTP_ENV}=1`);
  });

  it('serves GET, POST with a body and a denial on the vsock port and through the proxy', async () => {
    const ca = join(dir, 'certs', 'ca.cert.pem');
    const vsock = gw.listeners.http!;
    for (const via of [
      ['--connect-to', `api.test:443:${vsock}`],
      ['-x', `http://${gw.listeners.proxy}`],
    ]) {
      const get = await run('curl', [
        '-sS',
        '--http1.1',
        '--cacert',
        ca,
        ...via,
        'https://api.test/get',
      ]);
      expect(JSON.parse(get.stdout)).toMatchObject({ url: '/get' });
      const post = await run('curl', [
        '-sS',
        '--http1.1',
        '--cacert',
        ca,
        ...via,
        '-H',
        'transfer-encoding: chunked',
        '--data-binary',
        'hello',
        'https://api.test/post',
      ]);
      expect(JSON.parse(post.stdout)).toMatchObject({ url: '/post', body: 'hello' });
      const no = await run('curl', [
        '-sS',
        '--http1.1',
        '--cacert',
        ca,
        ...via,
        '-w',
        '\n%{http_code}',
        'https://api.test/admin',
      ]);
      expect(no.stdout.trim().split('\n').at(-1)).toBe('403');
    }
  });
});
