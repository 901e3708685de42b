/**
 * The session report in a real browser (Debian's chromium, driven by playwright-core): a report
 * written by `celgate report` from a session this test produced with real traffic, and the live
 * page `GET /ui` of the running gateway over loopback TCP with the token. Each shows the counts
 * session.db holds, logs no console error, and makes no request anywhere but its own data URL.
 * Screenshots are kept under test-artifacts/.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';

const run = promisify(execFile);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;
const TOKEN = 'report-test-token-0123456789';

let gw: RunningTestGateway;
let upstream: http.Server;

async function browse(
  url: string,
  screenshot: string,
  allowed: (u: string) => boolean,
  waitMs = 0,
) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(url);
    await page.waitForSelector('[data-count="events"]');
    if (waitMs > 0) await page.waitForTimeout(waitMs);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, screenshot), fullPage: true });
    const count = async (k: string) =>
      Number((await page.textContent(`[data-count="${k}"]`))!.replace(/,/g, ''));
    const shown = {
      events: await count('events'),
      allowed: await count('allowed'),
      blocked: await count('blocked'),
      errors: await count('errors'),
    };
    const blockRows = await page.locator('#blocks tbody tr').count();
    await page.fill('#filter', 'paste.test');
    const filtered = await page.locator('#blocks tbody tr').count();
    return {
      errors,
      requests: requests.filter((u) => !allowed(u)),
      allRequests: requests,
      shown,
      blockRows,
      filtered,
    };
  } finally {
    await browser.close();
  }
}

function dbCounts(path: string) {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare(
        "SELECT COUNT(*) AS events, SUM(decision = 'allow') AS allowed, SUM(decision = 'block') AS blocked, SUM(decision = 'error') AS errors FROM security_events",
      )
      .get() as Record<string, number>;
  } finally {
    db.close();
  }
}

describe.skipIf(CHROMIUM === undefined)(
  `the session report in Chromium${CHROMIUM === undefined ? ' (skipped: apt-get install chromium)' : ''}`,
  () => {
    beforeAll(async () => {
      upstream = http.createServer((_q, r) => r.end('ok'));
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
      const dir = mkdtempSync(join(tmpdir(), 'celgate-report-'));
      writeFileSync(
        join(dir, 'r.yaml'),
        'id: team\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-paste\n    condition: http.request.host == "paste.test"\n    action: block\n    reason: pastebins are off limits\n    severity: high\n  - id: watch-api\n    condition: http.request.path.startsWith("/v1")\n    action: block\n    mode: shadow\n',
      );
      gw = await startGateway({
        config: {
          rules: [join(dir, 'r.yaml')],
          control: { tcp: '127.0.0.1:0', token: TOKEN },
          http: {
            upstream_map: {
              'api.test': `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
              'paste.test': `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
            },
          },
        },
      });
      const agent = new ProxyAgent(`http://${gw.listeners.proxy}`);
      for (let i = 0; i < 30; i++)
        await (await request(`http://api.test/v1/items/${i}`, { dispatcher: agent })).body.text();
      for (let i = 0; i < 5; i++)
        await (await request(`http://paste.test/upload/${i}`, { dispatcher: agent })).body.text();
      await agent.close();
      await gw.api('POST', '/v1/exec', { argv: ['echo', 'hello'] });
      await gw.api('GET', '/v1/events?limit=1'); // flushes the ledger
    }, 60_000);

    afterAll(async () => {
      await gw?.stop();
      upstream?.close();
    });

    it('celgate report writes one self-contained file that shows what session.db holds, with no network request', async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'celgate-report-out-')), 'report.html');
      const r = await run(process.execPath, [MAIN_JS, 'report', '--db', gw.sessionDb, '-o', out]);
      expect(r.stdout).toMatch(/report\.html: \d+ events/);
      const html = readFileSync(out, 'utf8');
      expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/i);
      const want = dbCounts(gw.sessionDb);
      const page = await browse(`file://${out}`, 'report-file.png', (u) => u === `file://${out}`);
      expect(page.errors).toEqual([]);
      expect(page.requests).toEqual([]);
      expect(page.shown).toEqual({
        events: want.events,
        allowed: want.allowed,
        blocked: want.blocked,
        errors: want.errors ?? 0,
      });
      expect(page.blockRows).toBeGreaterThanOrEqual(5);
      expect(page.filtered).toBe(5);
      expect(statSync(out).size).toBeLessThan(2 * 1024 * 1024);
    });

    it('GET /ui on the running gateway (loopback TCP, token) shows the same counts and refreshes itself from its own data URL only', async () => {
      const base = `http://${gw.listeners.control_tcp}`;
      const unauth = await fetch(`${base}/ui`);
      expect(unauth.status).toBe(401);
      const want = dbCounts(gw.sessionDb);
      const page = await browse(
        `${base}/ui?token=${TOKEN}`,
        'report-live.png',
        (u) => u.startsWith(`${base}/ui`),
        6_000,
      );
      expect(page.errors).toEqual([]);
      expect(page.requests).toEqual([]);
      expect(page.allRequests.some((u) => u === `${base}/ui/data.json`)).toBe(true);
      expect(page.shown.events).toBeGreaterThanOrEqual(want.events ?? 0);
      expect(page.shown.blocked).toBe(want.blocked ?? 0);
    });
  },
);

it('celgate report explains what it needs when there is no session', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'celgate-report-empty-'));
  const r = spawnSync(process.execPath, [MAIN_JS, 'report', '--data-dir', empty], {
    encoding: 'utf8',
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/no sessions in .*sessions \(give --db or --data-dir\)/);
});
