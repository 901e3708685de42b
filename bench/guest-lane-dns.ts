/**
 * DNS lane: N blocked lookups through getaddrinfo inside the guest (one Node process calling
 * dns.lookup per unique name, IPv4 only so one A query each), via the bridge's stub on
 * 127.0.0.1:53. Every lookup must fail with ENOTFOUND (NXDOMAIN from the gateway).
 */
import { join } from 'node:path';
import { repoRoot } from './artifact.js';
import type { LaneContext, LaneDrive, LaneSpec } from './guest-lanes.js';

export const DNS_CLIENT_JS = join(repoRoot(), 'dist', 'bench', 'guest-dns-client.js');
const suffix = (tag: string) => `blocked-${tag}.bench.celgate.test`;

export const dnsLane: LaneSpec = {
  name: 'dns',
  table: 'dns_events',
  condition: (tag, broken) =>
    `dns.request.qname.endsWith("${suffix(tag)}${broken ? '.never' : ''}")`,
  warmCondition: (warmTag) => `dns.request.qname.endsWith("${suffix(warmTag)}")`,
  async drive(ctx: LaneContext): Promise<LaneDrive> {
    const warm = Array.from({ length: ctx.warmup }, (_, i) => `op${i}.${suffix(ctx.warmTag)}`);
    const names = Array.from({ length: ctx.runs }, (_, i) => `op${i}.${suffix(ctx.tag)}`);
    // One client process: warm-up lookups first, then the measured ones (dropped from the results).
    const r = await ctx.guest.run([process.execPath, DNS_CLIENT_JS, ...warm, ...names], {
      timeoutMs: 60_000,
    });
    let rows: Array<{ name: string; ms: number; code: string }> = [];
    try {
      rows = (JSON.parse(r.stdout.trim()) as typeof rows).slice(warm.length);
    } catch {
      /* reported below */
    }
    const nx = rows.filter((x) => x.code === 'ENOTFOUND').length;
    return {
      results: { dns_blocked_lookup_ms: rows.map((x) => x.ms) },
      checks: [
        {
          name: `getaddrinfo in the guest got NXDOMAIN (ENOTFOUND) for all ${ctx.runs} names`,
          ok: nx === ctx.runs,
          detail: `${nx} ENOTFOUND; codes ${[...new Set(rows.map((x) => x.code))].join(',')} ${r.stderr.slice(0, 200)}`,
        },
      ],
      events: ctx.runs,
    };
  },
};
