/**
 * A full disk loses no rows: a real gateway whose data directory is a small tmpfs this test
 * mounts (root only) and fills while guests keep sending. Below `ledger.min_free_bytes` the
 * gateway refuses — HTTP 503 `ledger_unavailable` on the vsock port and through the proxy, DNS
 * SERVFAIL, exec refused — says so in /v1/health and /metrics, and recovers by itself once space
 * is back. At the end every request that reached the upstream has its `allow` row in session.db.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { connectFramedTransport } from '../../src/transport/mcp/index.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { EVERYTHING } from '../support/mcp.js';

const ROOT = process.getuid?.() === 0;
const HAVE_DIG = spawnSync('dig', ['-v']).status === 0;
const MIB = 1024 * 1024;

function canMount(): boolean {
  if (!ROOT) return false;
  const probe = mkdtempSync(join(tmpdir(), 'celgate-tmpfs-probe-'));
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]).status === 0;
  if (ok) spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return ok;
}

const available = canMount();

describe.skipIf(!available)(
  `a full ledger disk (tmpfs)${available ? '' : ' (skipped: needs root and mount -t tmpfs)'}`,
  () => {
    let mnt: string;
    let gw: RunningTestGateway;
    let upstream: http.Server;
    let served = 0;

    beforeAll(async () => {
      mnt = mkdtempSync(join(tmpdir(), 'celgate-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
      upstream = http.createServer((req, res) => {
        served++;
        res.end('ok');
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
      const port = (upstream.address() as AddressInfo).port;
      gw = await startGateway({
        dataDir: mnt,
        config: {
          ledger: { min_free_bytes: 12 * MIB },
          http: { upstream_map: { 'api.test': `127.0.0.1:${port}` } },
          dns: { upstreams: [], static: { 'api.test': ['203.0.113.7'] }, listen: '127.0.0.1:0' },
          mcp: { servers: [EVERYTHING] },
        },
      });
    });

    afterAll(async () => {
      await gw?.stop();
      upstream?.close();
      if (mnt !== undefined) {
        spawnSync('umount', [mnt]);
        rmSync(mnt, { recursive: true, force: true });
      }
    });

    const vsock = () => new Client(`http://${gw.listeners.http}`);
    const viaProxy = () => new ProxyAgent({ uri: `http://${gw.listeners.proxy}` });

    async function get(
      client: Client | ProxyAgent,
      path: string,
    ): Promise<{ status: number; body: string }> {
      const r =
        client instanceof Client
          ? await client.request({ path, method: 'GET', headers: { host: 'api.test' } })
          : await request(`http://api.test${path}`, { dispatcher: client });
      return { status: r.statusCode, body: await r.body.text() };
    }

    function dig(): string {
      const [host, port] = gw.listeners.dns_udp!.split(':');
      return execFileSync(
        'dig',
        [`@${host}`, '-p', port!, '+tries=1', '+time=2', 'api.test', 'A'],
        { encoding: 'utf8' },
      );
    }

    const filler = () => join(mnt, 'filler.bin');
    const free = () => {
      const s = statfsSync(mnt);
      return s.bavail * s.bsize;
    };
    /** Fills the disk as another program would, ~5 MiB/s, until 8 MiB are left (below the 12 MiB reserve; SQLite's WAL may grow about 4 MiB between checkpoints). */
    async function fill(): Promise<void> {
      const fd = openSync(filler(), 'a');
      const chunk = Buffer.alloc(128 * 1024, 1);
      try {
        while (free() > 8 * MIB) {
          writeSync(fd, chunk);
          await new Promise((r) => setTimeout(r, 25));
        }
      } finally {
        closeSync(fd);
      }
    }

    it('refuses every protocol while the disk is below the reserve, recovers by itself, and loses no row', async () => {
      const c = vsock();
      const p = viaProxy();
      const mcp = new McpClient({ name: 'full-disk', version: '1' });
      await mcp.connect(
        await connectFramedTransport(
          { mode: 'tcp', host: '127.0.0.1', port: Number(gw.listeners.mcp!.split(':').pop()) },
          { processName: 'full-disk' },
        ),
      );
      const echo = () =>
        mcp.callTool({ name: 'everything__echo', arguments: { message: 'x' } }).then(
          () => 'ok',
          (e: Error) => e.message,
        );
      expect(await echo()).toBe('ok');
      expect((await get(c, '/before')).status).toBe(200);
      // Traffic keeps flowing while the disk fills.
      let stop = false;
      const statuses: number[] = [];
      const traffic = (async () => {
        let i = 0;
        while (!stop) statuses.push((await get(c, `/during-${i++}`)).status);
      })();
      await new Promise((r) => setTimeout(r, 100));
      await fill();
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await traffic;
      expect(statuses).toContain(503);

      const refused = await get(c, '/refused');
      expect(refused.status).toBe(503);
      expect(refused.body).toMatch(/ledger/);
      expect((await get(p, '/refused-proxy')).status).toBe(503);
      if (HAVE_DIG) expect(dig()).toMatch(/status: SERVFAIL/);
      expect(await echo()).toMatch(/ledger/);
      const exec = await gw.api('POST', '/v1/exec', { argv: ['true'] });
      expect(exec.json.decision).toBe('error');
      const health = await gw.api('GET', '/v1/health');
      expect(health.status).toBe(503);
      expect(health.json).toMatchObject({ status: 'not_ready', ready: false });
      expect(health.json.reason).toMatch(/min_free_bytes/);
      expect((await gw.api('GET', '/metrics')).text).toMatch(
        /celgate_ledger_failures_total\{kind="refused_event"\} [1-9]/,
      );

      rmSync(filler());
      // Recovery by itself: free space is checked at least every second.
      let after = 0;
      for (let i = 0; i < 40 && after !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        after = (await get(c, '/after')).status;
      }
      expect(after).toBe(200);
      expect((await get(p, '/after-proxy')).status).toBe(200);
      expect(await echo()).toBe('ok');
      await mcp.close();
      expect((await gw.api('GET', '/v1/health')).status).toBe(200);
      await c.close();
      await p.close();

      expect(await gw.stop()).toBe(0);
      const Database = (await import('better-sqlite3')).default;
      const db = new Database(join(gw.sessionDir, 'session.db'), { readonly: true });
      // Requests the rules allowed (a response refused after the disk filled still counts: it reached the upstream).
      const allowed = (
        db
          .prepare(
            "SELECT COUNT(*) AS n FROM security_events WHERE event_type = 'http.request' AND decision = 'allow'",
          )
          .get() as { n: number }
      ).n;
      const refusedRows = (
        db
          .prepare("SELECT COUNT(*) AS n FROM net_events WHERE decision = 'error' AND status = 503")
          .get() as { n: number }
      ).n;
      db.close();
      // Every request the upstream served has its allow row; the refusals were recorded too.
      expect(allowed).toBe(served);
      expect(refusedRows).toBeGreaterThan(0);
      expect(existsSync(join(gw.sessionDir, 'session.db'))).toBe(true);
    });
  },
);
