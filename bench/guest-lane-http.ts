/**
 * HTTP lane: curl inside the guest, HTTPS to a blocked host. The guest's TCP 443 is REDIRECTed to
 * the bridge, which relays to the gateway's port 5002; celgate mints a leaf (trusted through
 * `--cacert`) and answers 403. Two parts:
 *   - new connections: N curl runs, phase timings from `-w %{json}` (namelookup, connect,
 *     appconnect, starttransfer, total);
 *   - kept-alive: one curl fetching N URLs on one TLS connection (num_connects 0 after the first).
 * Every response must be a 403 whose body names the rule. The host name is pinned with --resolve
 * (an address nothing answers at), so this lane does not depend on DNS.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CA_CERT_FILE } from '../src/certs/ca.js';
import type { LaneContext, LaneDrive, LaneSpec } from './guest-lanes.js';

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
    const base = ['curl', '-sS', '--http1.1', '--max-time', '10', '--cacert', ca, '--resolve', `${h}:443:${PINNED_ADDR}`];
    const wh = host(ctx.warmTag);
    for (let i = 0; i < ctx.warmup; i++) {
      await ctx.guest.run(['curl', '-sS', '--http1.1', '--max-time', '10', '--cacert', ca, '--resolve', `${wh}:443:${PINNED_ADDR}`, '-o', '/dev/null', `https://${wh}/warm/${i}`]);
    }
    const checks = [];
    const phases: Record<string, number[]> = { namelookup_ms: [], connect_ms: [], appconnect_ms: [], starttransfer_ms: [], total_ms: [] };
    let denied = 0;
    const bad: string[] = [];
    for (let i = 0; i < ctx.runs; i++) {
      const out = join(ctx.workDir, `new-${i}.body`);
      const r = await ctx.guest.run([...base, '-o', out, '-w', '%{json}\n', `https://${h}/secret/${i}`]);
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
      else bad.push(`code ${s?.http_code} ${r.stderr.trim().slice(0, 150)} ${body.slice(0, 150)}`);
    }
    checks.push({ name: `curl got 403 naming the rule on ${ctx.runs} new connections`, ok: denied === ctx.runs, detail: bad.slice(0, 2).join(' | ') || `${denied} denied` });

    const ka = await ctx.guest.run([...base, '-o', join(ctx.workDir, 'ka-#1.body'), '-w', '%{json}\n', `https://${h}/keepalive/[1-${ctx.runs}]`]);
    const kaStats = parseStats(ka.stdout);
    let kaDenied = 0;
    for (let i = 1; i <= ctx.runs; i++) {
      const f = join(ctx.workDir, `ka-${i}.body`);
      if (kaStats[i - 1]?.http_code === 403 && existsSync(f) && readFileSync(f, 'utf8').includes(ctx.ruleId)) kaDenied++;
    }
    const reused = kaStats.slice(1).filter((s) => s.num_connects === 0).length;
    checks.push({ name: `kept-alive: ${ctx.runs} requests got 403 naming the rule`, ok: kaDenied === ctx.runs, detail: `${kaDenied} denied ${ka.stderr.trim().slice(0, 200)}` });
    checks.push({ name: 'kept-alive: requests after the first reused the TLS connection', ok: reused === ctx.runs - 1, detail: `${reused} reused` });
    return {
      results: {
        ...phases,
        keepalive_starttransfer_ms: kaStats.slice(1).map((s) => s.time_starttransfer * 1000),
        keepalive_total_ms: kaStats.slice(1).map((s) => s.time_total * 1000),
      },
      checks,
      events: ctx.runs * 2,
      notes: { host: h, keepalive_first_total_ms: (kaStats[0]?.time_total ?? 0) * 1000 },
    };
  },
};
