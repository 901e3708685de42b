/**
 * HTTP lane: curl inside the guest, HTTPS to a blocked host. The guest's TCP 443 is REDIRECTed to
 * the bridge, which relays to the gateway's port 5002; celgate mints a leaf (trusted through
 * `--cacert`) and answers 403. Two parts:
 *   - new connections: N curl runs, phase timings from `-w %{json}` (namelookup, connect,
 *     appconnect, starttransfer, total);
 *   - kept-alive: one curl fetching N URLs on one TLS connection (num_connects 0 after the first).
 * Every response must be a 403 whose body names the rule. The host name is pinned with --resolve
 * (an address nothing answers at), so this lane does not depend on DNS.
 *
 * Floor (same run, interleaved, no gate): the same curl, same options, a leaf from the same CA,
 * against a bare Node HTTPS server inside the guest (bench/guest-https-floor.ts) — no bridge, no
 * gateway. On this machine curl's own TLS setup is most of starttransfer; the floor says how much.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CA_CERT_FILE, CertificateAuthority } from '../src/certs/ca.js';
import { LeafCache } from '../src/certs/leaf-cache.js';
import { repoRoot } from './artifact.js';
import type { GuestNamespace } from './guest-netns.js';
import type { LaneContext, LaneDrive, LaneSpec } from './guest-lanes.js';

export const FLOOR_JS = join(repoRoot(), 'dist', 'bench', 'guest-https-floor.js');
/** The floor server's port inside the guest (not 80/443, so the REDIRECT does not catch it). */
export const FLOOR_PORT = 18443;
const FLOOR_HOST = 'floor.bench.celgate.test';
const FLOOR_READY_MS = 10_000;

/** An address on the guest's default route; the iptables REDIRECT catches connections to it. */
export const PINNED_ADDR = '203.0.113.10';
const host = (tag: string) => `blocked-${tag}.bench.celgate.test`;

interface CurlStats {
  http_code: number;
  num_connects: number;
  time_namelookup: number;
  time_connect: number;
  time_appconnect: number;
  time_starttransfer: number;
  time_total: number;
  errormsg?: string | null;
}

/** Starts the floor server in the guest with a leaf for FLOOR_HOST signed by the gateway's CA. */
async function startFloor(guest: GuestNamespace, workDir: string): Promise<{ stop(): void }> {
  const ca = await CertificateAuthority.loadOrCreate(join(workDir, 'certs'));
  const pem = await new LeafCache(ca, { max: 1 }).pem(FLOOR_HOST);
  const keyFile = join(workDir, 'floor.key.pem');
  const certFile = join(workDir, 'floor.cert.pem');
  writeFileSync(keyFile, pem.key, { mode: 0o600 });
  writeFileSync(certFile, pem.cert);
  const child = guest.spawn([process.execPath, FLOOR_JS, keyFile, certFile, String(FLOOR_PORT)]);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`floor server not ready: ${err.slice(0, 300)}`)),
      FLOOR_READY_MS,
    );
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      if (c.includes('"ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`floor server exited with ${code}: ${err.slice(0, 300)}`));
    });
  });
  return { stop: () => child.kill('SIGTERM') };
}

function parseStats(text: string): CurlStats[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"time_total"'))
    .map((l) => JSON.parse(l) as CurlStats);
}

/** The CA the gateway signs leaves with (it creates it in `http.ca_dir` on first start). */
export function findCaCert(workDir: string): string | null {
  const p = join(workDir, 'certs', CA_CERT_FILE);
  return existsSync(p) ? p : null;
}

export const httpLane: LaneSpec = {
  name: 'http',
  table: 'net_events',
  gatewayConfig: (workDir) => ({ http: { ca_dir: join(workDir, 'certs') } }),
  condition: (tag, broken) => `http.request.host == "${host(tag)}${broken ? '.never' : ''}"`,
  warmCondition: (warmTag) => `http.request.host == "${host(warmTag)}"`,
  async drive(ctx: LaneContext): Promise<LaneDrive> {
    const h = host(ctx.tag);
    const ca = findCaCert(ctx.workDir);
    if (ca === null) throw new Error(`no CA certificate found under ${ctx.workDir}/certs`);
    const base = [
      'curl',
      '-sS',
      '--http1.1',
      '--max-time',
      '10',
      '--cacert',
      ca,
      '--resolve',
      `${h}:443:${PINNED_ADDR}`,
    ];
    const wh = host(ctx.warmTag);
    for (let i = 0; i < ctx.warmup; i++) {
      await ctx.guest.run([
        'curl',
        '-sS',
        '--http1.1',
        '--max-time',
        '10',
        '--cacert',
        ca,
        '--resolve',
        `${wh}:443:${PINNED_ADDR}`,
        '-o',
        '/dev/null',
        `https://${wh}/warm/${i}`,
      ]);
    }
    const checks = [];
    const phases: Record<string, number[]> = {
      namelookup_ms: [],
      connect_ms: [],
      appconnect_ms: [],
      starttransfer_ms: [],
      total_ms: [],
    };
    const floor: Record<string, number[]> = { floor_appconnect_ms: [], floor_starttransfer_ms: [] };
    const floorBase = [
      'curl',
      '-sS',
      '--http1.1',
      '--max-time',
      '10',
      '--cacert',
      ca,
      '--resolve',
      `${FLOOR_HOST}:${FLOOR_PORT}:127.0.0.1`,
      '-o',
      '/dev/null',
      '-w',
      '%{json}\n',
    ];
    const floorServer = await startFloor(ctx.guest, ctx.workDir);
    try {
      let floorOk = 0;
      let denied = 0;
      const bad: string[] = [];
      for (let i = 0; i < ctx.warmup; i++)
        await ctx.guest.run([...floorBase, `https://${FLOOR_HOST}:${FLOOR_PORT}/warm/${i}`]);
      for (let i = 0; i < ctx.runs; i++) {
        const f = parseStats(
          (await ctx.guest.run([...floorBase, `https://${FLOOR_HOST}:${FLOOR_PORT}/floor/${i}`]))
            .stdout,
        )[0];
        if (f?.http_code === 403) {
          floorOk++;
          floor.floor_appconnect_ms!.push(f.time_appconnect * 1000);
          floor.floor_starttransfer_ms!.push(f.time_starttransfer * 1000);
        }
        const out = join(ctx.workDir, `new-${i}.body`);
        const r = await ctx.guest.run([
          ...base,
          '-o',
          out,
          '-w',
          '%{json}\n',
          `https://${h}/secret/${i}`,
        ]);
        const s = parseStats(r.stdout)[0];
        const body = existsSync(out) ? readFileSync(out, 'utf8') : '';
        if (s !== undefined) {
          phases.namelookup_ms!.push(s.time_namelookup * 1000);
          phases.connect_ms!.push(s.time_connect * 1000);
          phases.appconnect_ms!.push(s.time_appconnect * 1000);
          phases.starttransfer_ms!.push(s.time_starttransfer * 1000);
          phases.total_ms!.push(s.time_total * 1000);
        }
        if (s?.http_code === 403 && body.includes(ctx.ruleId)) denied++;
        else
          bad.push(`code ${s?.http_code} ${r.stderr.trim().slice(0, 150)} ${body.slice(0, 150)}`);
      }
      checks.push({
        name: `curl got 403 naming the rule on ${ctx.runs} new connections`,
        ok: denied === ctx.runs,
        detail: bad.slice(0, 2).join(' | ') || `${denied} denied`,
      });

      const kaFloor = parseStats(
        (
          await ctx.guest.run([
            ...floorBase,
            `https://${FLOOR_HOST}:${FLOOR_PORT}/keepalive/[1-${ctx.runs}]`,
          ])
        ).stdout,
      );
      checks.push({
        name: `floor: the bare server answered ${ctx.runs} new and ${ctx.runs} kept-alive requests`,
        ok: floorOk === ctx.runs && kaFloor.length === ctx.runs,
        detail: `${floorOk} + ${kaFloor.length}`,
      });

      const ka = await ctx.guest.run([
        ...base,
        '-o',
        join(ctx.workDir, 'ka-#1.body'),
        '-w',
        '%{json}\n',
        `https://${h}/keepalive/[1-${ctx.runs}]`,
      ]);
      const kaStats = parseStats(ka.stdout);
      let kaDenied = 0;
      for (let i = 1; i <= ctx.runs; i++) {
        const f = join(ctx.workDir, `ka-${i}.body`);
        if (
          kaStats[i - 1]?.http_code === 403 &&
          existsSync(f) &&
          readFileSync(f, 'utf8').includes(ctx.ruleId)
        )
          kaDenied++;
      }
      const reused = kaStats.slice(1).filter((s) => s.num_connects === 0).length;
      checks.push({
        name: `kept-alive: ${ctx.runs} requests got 403 naming the rule`,
        ok: kaDenied === ctx.runs,
        detail: `${kaDenied} denied ${ka.stderr.trim().slice(0, 200)}`,
      });
      checks.push({
        name: 'kept-alive: requests after the first reused the TLS connection',
        ok: reused === ctx.runs - 1,
        detail: `${reused} reused`,
      });
      return {
        results: {
          ...phases,
          keepalive_starttransfer_ms: kaStats.slice(1).map((s) => s.time_starttransfer * 1000),
          keepalive_total_ms: kaStats.slice(1).map((s) => s.time_total * 1000),
          ...floor,
          floor_keepalive_starttransfer_ms: kaFloor
            .slice(1)
            .map((s) => s.time_starttransfer * 1000),
        },
        checks,
        events: ctx.runs * 2,
        notes: { host: h, keepalive_first_total_ms: (kaStats[0]?.time_total ?? 0) * 1000 },
      };
    } finally {
      floorServer.stop();
    }
  },
};
