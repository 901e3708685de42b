/**
 * Sustained load through a freshly started gateway (`celgate start`, built): allowed 1 KiB GETs on
 * kept-alive connections to a loopback HTTPS upstream, starting right after the gateway is ready —
 * the case bench/http.ts does not cover, since its throughput case runs after thousands of other
 * requests. Prints req/s each second, then the gateway's CPU per request and, with --trace-gc, a
 * summary of its scavenges (how long they took and how much each promoted to the old generation).
 * Not a goal or a gate: a diagnostic for garbage-collection and throughput work (docs/benchmarks.md,
 * "Garbage collection"). Exits 1 unless every response was a 200 with a 1 KiB body that the upstream
 * served.
 *
 * usage: npm run -s build && node dist/bench/http-load.js [--seconds N] [--connections N] [--trace-gc]
 *          [--pretenuring]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import tls from 'node:tls';
import { Pool } from 'undici';
import { flagsOrExit } from './args.js';
import { startKiBBench } from './http.js';
import { processCpuMs } from './proc.js';

export const USAGE = `usage: node dist/bench/http-load.js [options]

Allowed 1 KiB GETs through a freshly started gateway on kept-alive connections; prints req/s each
second, then the gateway's CPU per request (and its scavenges with --trace-gc).

  --seconds N      how long the load runs (default 10)
  --connections N  kept-alive connections (default 16)
  --trace-gc       run the gateway with node --trace-gc and summarise its scavenges
  --pretenuring    run the gateway with V8's allocation-site pretenuring on (celgate start
                   turns it off unless node is given --allocation-site-pretenuring)
  -h, --help       this text
`;

export interface GcSummary {
  scavenges: number;
  fullGcs: number;
  /** Median duration of the scavenges after the first third (start-up excluded), ms. */
  medianScavengeMs: number;
  /** Mean growth of the heap across one scavenge (what it promoted), same scavenges, MB. */
  meanPromotedMb: number;
}

const SCAVENGE =
  /Scavenge(?: \(interleaved\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB, ([\d.]+)/;

/**
 * Summarises node --trace-gc output. A scavenge's promotion is the heap size after it minus the
 * size after the scavenge before (a full GC in between restarts the count).
 */
export function summarizeGcTrace(text: string): GcSummary {
  const durations: number[] = [];
  const promoted: number[] = [];
  let fullGcs = 0;
  let lastAfter: number | null = null;
  for (const line of text.split('\n')) {
    const m = SCAVENGE.exec(line);
    if (m !== null) {
      const after = Number(m[3]);
      durations.push(Number(m[5]));
      promoted.push(lastAfter === null ? Number.NaN : after - lastAfter);
      lastAfter = after;
    } else if (/Mark-Compact|Mark-sweep/.test(line)) {
      fullGcs += 1;
      lastAfter = null;
    }
  }
  const from = Math.floor(durations.length / 3);
  const steady = durations.slice(from).sort((a, b) => a - b);
  const grown = promoted.slice(from).filter((p) => !Number.isNaN(p));
  return {
    scavenges: durations.length,
    fullGcs,
    medianScavengeMs: steady.length === 0 ? Number.NaN : steady[Math.floor(steady.length / 2)]!,
    meanPromotedMb:
      grown.length === 0 ? Number.NaN : grown.reduce((a, b) => a + b, 0) / grown.length,
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  const flags = flagsOrExit(
    argv,
    { values: ['--seconds', '--connections'], switches: ['--trace-gc', '--pretenuring'] },
    USAGE,
  );
  if (typeof flags === 'number') return flags;
  const seconds = Number(flags.values.get('--seconds') ?? 10);
  const connections = Number(flags.values.get('--connections') ?? 16);
  if (!(seconds > 0) || !Number.isInteger(connections) || connections < 1) {
    process.stderr.write('--seconds must be > 0 and --connections a positive integer\n');
    return 2;
  }
  const traceGc = flags.switches.has('--trace-gc');
  const nodeArgs = [
    ...(traceGc ? ['--trace-gc'] : []),
    ...(flags.switches.has('--pretenuring') ? ['--allocation-site-pretenuring'] : []),
  ];

  const {
    certs,
    up,
    gw,
    port,
    gwCa: ca,
  } = await startKiBBench({ dropLogsAfterReady: true, nodeArgs });
  try {
    const pool = new Pool('https://api.bench.test', {
      connections,
      connect: (_o, cb) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port,
          servername: 'api.bench.test',
          ca,
          ALPNProtocols: ['http/1.1'],
        });
        s.once('secureConnect', () => cb(null, s));
        s.once('error', (e) => cb(e, null));
      },
    });
    const pid = Number((await gw.api('GET', '/v1/health')).json.pid);
    const cpuMs = () => processCpuMs(pid);
    let ok = 0;
    let bad = 0;
    const seen0 = up.seen.length;
    const cpu0 = cpuMs();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let lastOk = 0;
    let lastCpu = cpu0;
    let lastOwn = process.cpuUsage();
    const progress = setInterval(() => {
      const cpu = cpuMs();
      const own = process.cpuUsage(lastOwn);
      const n = ok - lastOk;
      const perReq = (us: number) => (us / Math.max(1, n)).toFixed(0);
      process.stdout.write(
        `  ${((performance.now() - t0) / 1000).toFixed(0)} s: ${n} req/s; CPU per request: gateway ${perReq((cpu - lastCpu) * 1000)} µs, client + upstream ${perReq(own.user + own.system)} µs\n`,
      );
      lastOk = ok;
      lastCpu = cpu;
      lastOwn = process.cpuUsage();
    }, 1000);
    const worker = async () => {
      while (performance.now() < end) {
        const r = await pool.request({
          path: '/load',
          method: 'GET',
          headers: { host: 'api.bench.test' },
        });
        const body = await r.body.arrayBuffer();
        if (r.statusCode === 200 && body.byteLength === 1024) ok += 1;
        else bad += 1;
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    clearInterval(progress);
    const took = (performance.now() - t0) / 1000;
    const cpuPerReq = ((cpuMs() - cpu0) * 1000) / Math.max(1, ok);
    await pool.close();
    const served = up.seen.length - seen0;
    process.stdout.write(
      `${ok} ok, ${bad} bad in ${took.toFixed(1)} s: ${(ok / took).toFixed(0)} req/s; gateway CPU ${cpuPerReq.toFixed(1)} µs per request\n`,
    );
    if (traceGc) {
      const gc = summarizeGcTrace(readFileSync(join(certs.dir, 'gateway.log'), 'utf8'));
      process.stdout.write(
        `gateway GC: ${gc.scavenges} scavenges (median ${gc.medianScavengeMs.toFixed(2)} ms, ${gc.meanPromotedMb.toFixed(2)} MB promoted each), ${gc.fullGcs} full\n`,
      );
    }
    if (bad > 0 || ok === 0 || served !== ok + bad) {
      process.stderr.write(
        `not every request was served as a 200 with 1 KiB (ok ${ok}, bad ${bad}, upstream served ${served})\n`,
      );
      return 1;
    }
    return 0;
  } finally {
    await gw.stop();
    await up.close();
    certs.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  process.exitCode = await main(process.argv.slice(2));
