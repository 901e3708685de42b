/**
 * The destination guard in the real built gateway (`celgate start`), configured from the file:
 * `http.allow_private_destinations` reaches the guard, and without it the same request is refused.
 * balanced blocks the NAME "localhost"; a rule that runs first allows it, so only the guard stands
 * between the request and the upstream on 127.0.0.1 (not in upstream_map: the gateway resolves it).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);

let certs: Certs;
let up: Upstream;
let opened: RunningTestGateway;
let guarded: RunningTestGateway;

async function gatewayWith(name: string, allow: string[] | undefined): Promise<RunningTestGateway> {
  const upstreamCa = join(certs.dir, 'upstream-ca.pem');
  writeFileSync(upstreamCa, certs.caPem);
  const gw = await startGateway({
    config: {
      http: {
        ca_dir: join(certs.dir, `${name}-certs`),
        extra_ca: [upstreamCa],
        https_port: up.port, // where intercepted TLS for an unmapped host is sent
        ...(allow === undefined ? {} : { allow_private_destinations: allow }),
      },
    },
  });
  const put = await gw.api('PUT', '/v1/rules/allow-localhost', {
    description: 'test: allow localhost',
    condition: 'http.request.host == "localhost"',
    action: 'allow',
    priority: -1000,
  });
  expect(put.status).toBe(201);
  return gw;
}

async function curlVia(
  gw: RunningTestGateway,
  name: string,
  path: string,
): Promise<{ code: string; body: string }> {
  const port = gw.listeners.http!.split(':').pop()!;
  const ca = join(certs.dir, `${name}-certs`, 'ca.cert.pem');
  const r = await run('curl', [
    '-sS',
    '--cacert',
    ca,
    '--connect-to',
    `localhost:443:127.0.0.1:${port}`,
    '-H',
    'accept: application/json',
    '-w',
    '\n%{http_code}',
    `https://localhost${path}`,
  ]);
  const lines = r.stdout.split('\n');
  return { code: lines.pop()!, body: lines.join('\n') };
}

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res) => res.end(`upstream saw ${req.url}`));
  [opened, guarded] = await Promise.all([
    gatewayWith('opened', ['127.0.0.0/8']),
    gatewayWith('guarded', undefined),
  ]);
});
afterAll(async () => {
  await opened?.stop();
  await guarded?.stop();
  await up?.close();
  certs?.cleanup();
});

describe('destination guard in celgate start', () => {
  it('with http.allow_private_destinations listing loopback, the allowed name reaches the loopback upstream', async () => {
    const r = await curlVia(opened, 'opened', '/open');
    expect(r.code).toBe('200');
    expect(r.body).toBe('upstream saw /open');
  });

  it('without it, the same request is refused with 403 destination_blocked and recorded', async () => {
    const seen = up.seen.length;
    const r = await curlVia(guarded, 'guarded', '/closed');
    expect(r.code).toBe('403');
    expect(JSON.parse(r.body)).toMatchObject({
      error: 'destination_blocked',
      reason: expect.stringMatching(/^localhost resolves to 127\.0\.0\.1 \(loopback/),
    });
    expect(up.seen.length).toBe(seen);
    const db = new Database(guarded.sessionDb, { readonly: true });
    try {
      // The row is written when the exchange closes (on HTTP/2, the stream's close), which may come
      // after curl has its answer; each poll flushes the ledger through the API first.
      const row = async () => {
        await guarded.api('GET', '/v1/events?limit=1');
        return db
          .prepare(
            "SELECT decision, rule_id, status, error, host FROM net_events WHERE path = '/closed'",
          )
          .get();
      };
      await expect.poll(row, { timeout: 5_000 }).toEqual({
        decision: 'block',
        rule_id: 'celgate.destination-guard',
        status: 403,
        error: 'destination_blocked',
        host: 'localhost',
      });
      // The rules' allow and the guard's block are both in security_events; the block is the one enforced.
      const decisions = db
        .prepare(
          "SELECT decision, rule_id FROM security_events WHERE event_id = (SELECT event_id FROM net_events WHERE path = '/closed') ORDER BY seq",
        )
        .all();
      expect(decisions).toEqual([
        { decision: 'allow', rule_id: 'allow-localhost' },
        { decision: 'block', rule_id: 'celgate.destination-guard' },
      ]);
    } finally {
      db.close();
    }
  });
});
