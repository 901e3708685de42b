/**
 * What an operator reads: `celgate events` shows each event's target and refuses unknown filters;
 * a denial names its rule once; an upstream whose certificate cannot be verified is not called a
 * transient outage; a flood of malformed DNS packets writes one warning line, not one per packet.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type Certs } from '../../support/http-harness.js';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, [MAIN_JS, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

let gw: RunningTestGateway;
let certs: Certs;
let untrusted: https.Server;

beforeAll(async () => {
  certs = await makeCerts();
  // An HTTPS upstream whose CA the gateway does not trust.
  untrusted = https.createServer(
    {
      SNICallback: (n, cb) =>
        void certs.leaves.secureContext(n || 'localhost').then(
          (c) => cb(null, c),
          (e: Error) => cb(e),
        ),
    },
    (_q, r) => r.end('x'),
  );
  await new Promise<void>((r) => untrusted.listen(0, '127.0.0.1', () => r()));
  const dir = mkdtempSync(join(tmpdir(), 'celgate-opout-'));
  writeFileSync(
    join(dir, 'r.yaml'),
    'id: ops\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-paste\n    condition: http.request.host == "paste.test"\n    action: block\n    reason: pastebins are off limits\n',
  );
  gw = await startGateway({
    config: {
      rules: [join(dir, 'r.yaml')],
      http: {
        upstream_map: {
          'untrusted.test': `127.0.0.1:${(untrusted.address() as AddressInfo).port}`,
        },
      },
      dns: { upstreams: [], listen: '127.0.0.1:0' },
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  untrusted?.close();
  certs?.cleanup();
});

describe('operator output', () => {
  it('a denial names its rule once', async () => {
    const r = await request('http://paste.test/upload', {
      dispatcher: new ProxyAgent(`http://${gw.listeners.proxy}`),
    });
    const text = await r.body.text();
    expect(r.statusCode).toBe(403);
    expect(text).toContain('Blocked by celgate policy (rule no-paste): pastebins are off limits');
    expect(text.split('no-paste').length - 1).toBe(1);
  });

  it('an upstream certificate that cannot be verified is not "It may work later"', async () => {
    const agent = new ProxyAgent({
      uri: `http://${gw.listeners.proxy}`,
      requestTls: { rejectUnauthorized: false },
    });
    const r = await request('https://untrusted.test/', { dispatcher: agent });
    const text = await r.body.text();
    expect(r.statusCode).toBe(502);
    expect(r.headers['x-celgate-decision']).toBe('upstream_untrusted');
    expect(text).toMatch(/could not be verified/);
    expect(text).not.toMatch(/It may work later/);
  });

  it('celgate events shows the target, and unknown filters are errors', async () => {
    const out = await cli([
      'events',
      '--socket',
      gw.controlSocket,
      '--type',
      'http.request',
      '-n',
      '5',
    ]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/http\.request\s+block\s+paste\.test\/upload\s+no-paste/);
    const bad = await cli(['events', '--socket', gw.controlSocket, '--decision', 'blocked']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/decision must be allow, block or error/);
    const badType = await cli(['events', '--socket', gw.controlSocket, '--type', 'dns']);
    expect(badType.code).not.toBe(0);
    expect(badType.stderr).toMatch(/event_type must be one of/);
  });

  it('a flood of malformed DNS packets logs one warning line with a count, not one per packet', async () => {
    const [host, port] = gw.listeners.dns_udp!.split(':');
    const s = dgram.createSocket('udp4');
    for (let i = 0; i < 50; i++)
      s.send(Buffer.from([0, i, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff]), Number(port), host);
    await new Promise((r) => setTimeout(r, 500));
    s.close();
    const stats = (await gw.api('GET', '/v1/dns/stats')).json;
    const malformed = Object.values(
      (stats.malformed ?? stats.stats?.malformed ?? {}) as Record<string, number>,
    ).reduce((a, b) => a + b, 0);
    expect(malformed).toBeGreaterThanOrEqual(50);
    const lines = gw.logs().filter((l) => String(l.msg).startsWith('dns: malformed message'));
    expect(lines.length).toBe(1);
  });
});
