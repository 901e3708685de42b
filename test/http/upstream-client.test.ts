/**
 * The one upstream client (docs/http.md "One upstream client") behind a real gateway, with curl on
 * the vsock port and through the explicit proxy: requests the Node path takes — a chunked upload,
 * `Expect: 100-continue`, a large answer to a POST streamed through, an upstream that closes
 * mid-body — all go over the pool (upstream-call.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;
const BIG = 32 * 1024 * 1024;

describe.skipIf(!HAVE_CURL)('the Node path on the one upstream client', () => {
  let certs: Certs;
  let up: Upstream;
  let gw: RunningTestGateway;
  let dir: string;
  let ca: string;
  let vias: [string, string[]][];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-oneclient-'));
    certs = await makeCerts();
    writeFileSync(join(dir, 'up-ca.pem'), certs.caPem);
    writeFileSync(join(dir, 'upload.bin'), Buffer.alloc(3 * 1024 * 1024, 0x61));
    writeFileSync(
      join(dir, 'rules.yaml'),
      'id: one-client\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-admin\n    condition: http.request.path.startsWith("/admin")\n    action: block\n',
    );
    up = await startUpstream(certs, (req, res, body) => {
      if (req.url === '/big') {
        const chunk = Buffer.alloc(1024 * 1024, 0x62);
        let left = BIG / chunk.length;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const pump = () => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000000' });
        res.write(Buffer.alloc(10_000, 0x63));
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          url: req.url,
          bytes: body.length,
          te: req.headers['transfer-encoding'] ?? null,
          cl: req.headers['content-length'] ?? null,
          expect: req.headers.expect ?? null,
        }),
      );
    });
    gw = await startGateway({
      config: {
        rules: [join(dir, 'rules.yaml')],
        http: {
          ca_dir: join(dir, 'certs'),
          extra_ca: [join(dir, 'up-ca.pem')],
          upstream_map: { 'api.test': `127.0.0.1:${(up.server.address() as AddressInfo).port}` },
        },
      },
    });
    ca = join(dir, 'certs', 'ca.cert.pem');
    vias = [
      ['vsock port', ['--connect-to', `api.test:443:${gw.listeners.http!}`]],
      ['explicit proxy', ['-x', `http://${gw.listeners.proxy!}`]],
    ];
  });

  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    certs?.cleanup();
  });

  const curl = (via: string[], ...args: string[]) =>
    run('curl', ['-sS', '--http1.1', '--cacert', ca, ...via, ...args], {
      maxBuffer: 64 * 1024 * 1024,
      encoding: 'buffer',
    });

  it('forwards a chunked upload chunked, and a Content-Length upload sent after 100 Continue', async () => {
    for (const [, via] of vias) {
      const chunked = await curl(
        via,
        '-H',
        'transfer-encoding: chunked',
        '--data-binary',
        `@${join(dir, 'upload.bin')}`,
        'https://api.test/chunked',
      );
      expect(JSON.parse(chunked.stdout.toString())).toEqual({
        url: '/chunked',
        bytes: 3 * 1024 * 1024,
        te: 'chunked',
        cl: null,
        expect: null,
      });
      // curl waits for 100 Continue before sending the body (-v shows the interim answer).
      const cont = await curl(
        via,
        '-v',
        '-H',
        'expect: 100-continue',
        '--expect100-timeout',
        '30',
        '--data-binary',
        `@${join(dir, 'upload.bin')}`,
        'https://api.test/continue',
      );
      expect(cont.stderr.toString()).toMatch(/< HTTP\/1\.1 100 Continue/);
      expect(JSON.parse(cont.stdout.toString())).toEqual({
        url: '/continue',
        bytes: 3 * 1024 * 1024,
        te: null,
        cl: String(3 * 1024 * 1024),
        expect: null,
      });
    }
  });

  it('streams a large answer to a POST through, and refuses /admin before anything goes upstream', async () => {
    for (const [, via] of vias) {
      const before = up.seen.length;
      const big = await curl(via, '--data-binary', 'x', 'https://api.test/big');
      expect(big.stdout.length).toBe(BIG);
      const no = await curl(
        via,
        '--data-binary',
        'x',
        '-w',
        '\n%{http_code}',
        'https://api.test/admin',
      );
      expect(no.stdout.toString().trim().split('\n').at(-1)).toBe('403');
      expect(up.seen.length).toBe(before + 1);
    }
  });

  it('cuts the guest off when the upstream closes mid-body, and the gateway goes on', async () => {
    for (const [, via] of vias) {
      const err = await curl(via, '--data-binary', 'x', 'https://api.test/cut').then(
        () => null,
        (e: { code?: number }) => e,
      );
      // 18: partial file (the body ended short of its Content-Length); 56: receive failure.
      expect([18, 56, 92]).toContain(err?.code);
      const ok = await curl(via, '--data-binary', 'again', 'https://api.test/after');
      expect(JSON.parse(ok.stdout.toString())).toMatchObject({ url: '/after', bytes: 5 });
    }
  });
});
