/**
 * Fleet benchmarks (docs/fleet.md), against a real `nats-server -js` (Debian's, installed by
 * .ci/run). Each part asserts the work happened before it records a time; one artifact,
 * `benchmarks/security-engine/guest-fleet.json`:
 *
 *  1. distribution: 10 gateway processes follow one packs bucket; each round writes a new revision
 *     of a pack that blocks a new zone, and the time from the write to each gateway's install
 *     (`fleet.policy.applied_ms` in its /v1/health, same host clock) is one sample. Before the next
 *     round every gateway must answer NXDOMAIN for the new zone and NOERROR for the previous one.
 *     Goal: p99 ≤ 1 s.
 *  2. export: a session.db pre-filled with N events (a decision and a dns row each) is exported by
 *     the exporter worker of src/fleet to a fresh stream; events/s = N / time to the final
 *     watermark, after checking the stream holds exactly 2N messages. Goal ≥ 20,000 events/s.
 *  3. enforcement with export on vs off: two gateways, one exporting, one not, answer blocked
 *     lookups (one at a time, at a fixed rate, default 2,000/s) from a separate client process in
 *     interleaved rounds; the exporting one's rows must all reach the stream.
 *     Goal: median(on) ≤ 1.10 × median(off).
 *
 * usage: npm run -s build && node dist/bench/fleet.js [--gateways 10] [--rounds 20] [--events 100000] [--seconds 2] [--rate 2000]
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { dnsRequestEvent } from '../src/events/build.js';
import { policyFields } from '../src/events/sink.js';
import { LedgerWriter } from '../src/store/writer.js';
import { FleetExporter } from '../src/fleet/exporter.js';
import {
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
  type Summary,
} from './artifact.js';
import { startBenchGateway, type BenchGateway } from './guest-gateway.js';
import { HAVE_NATS, startNats, type NatsServer } from './nats-server.js';
import type { FleetClientReport } from './fleet-dns-client.js';
import { runIfMain } from './micro-kit.js';

export const DISTRIBUTION_P99_GOAL_MS = 1_000;
export const EXPORT_GOAL_EVENTS_PER_S = 20_000;
export const ENFORCEMENT_RATIO_GOAL = 1.1;
const exec = promisify(execFile);
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lookup(port: number, name: string): Promise<number> {
  const s = dgram.createSocket('udp4');
  const id = Math.floor(Math.random() * 65535);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`no DNS answer for ${name}`));
    }, 5_000);
    s.on('message', (m) => {
      if (m.readUInt16BE(0) !== id) return;
      clearTimeout(t);
      s.close();
      resolve(m[3]! & 0xf);
    });
    s.send(
      dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name }],
      }),
      port,
      '127.0.0.1',
    );
  });
}

const pack = (zone: string) => `id: fleet-bench
version: "1"
default_action: allow
rules:
  - id: fleet-bench-block
    condition: dns.request.qname.endsWith("${zone}")
    action: block
    reason: benchmark zone
`;

function fleetGateway(
  dir: string,
  nats: NatsServer,
  id: string,
  exportOn = true,
): Promise<BenchGateway> {
  mkdirSync(dir, { recursive: true });
  return startBenchGateway(
    dir,
    {
      dns: { listen: '127.0.0.1:0', upstreams: [], static: { 'ok.bench.test': ['192.0.2.1'] } },
      fleet: { nats: nats.url, gateway_id: id, export: exportOn },
    },
    { dropLogsAfterReady: true },
  );
}

const udpPort = (gw: BenchGateway) => Number(gw.listeners.dns_udp!.split(':')[1]);

async function distribution(
  nats: NatsServer,
  gateways: number,
  rounds: number,
  assertions: AssertionResult[],
): Promise<Summary> {
  const root = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const gws: BenchGateway[] = [];
  try {
    for (let i = 0; i < gateways; i++)
      gws.push(await fleetGateway(join(root, `g${i}`), nats, `bench-${i}`, false));
    const health = async (gw: BenchGateway) => (await gw.api('GET', '/v1/health')).json.fleet;
    for (const gw of gws)
      while (!(await health(gw)).connected || (await health(gw)).policy.state === 'local')
        await sleep(50);
    const nc = await connect({ servers: nats.url });
    const kv = await new Kvm(nc).create('celgate-packs', { history: 10 });
    const samples: number[] = [];
    let enforced = 0;
    for (let r = 0; r < rounds; r++) {
      const zone = `r${r}.fleet.bench.test`;
      const t0 = Date.now();
      const revision = await kv.put('fleet-bench', pack(zone));
      for (const gw of gws) {
        let f = await health(gw);
        const deadline = Date.now() + 10_000;
        while (f.policy.revision < revision && Date.now() < deadline) {
          await sleep(5);
          f = await health(gw);
        }
        samples.push(
          f.policy.revision >= revision ? f.policy.applied_ms - t0 : Number.POSITIVE_INFINITY,
        );
      }
      for (const gw of gws) {
        const blocked = (await lookup(udpPort(gw), `x.${zone}`)) === 3;
        const previousLifted =
          r === 0 || (await lookup(udpPort(gw), `x.r${r - 1}.fleet.bench.test`)) !== 3;
        if (blocked && previousLifted) enforced++;
      }
    }
    await kv.delete('fleet-bench');
    await nc.close();
    assertions.push({
      name: `distribution: every gateway enforced every revision (${gateways} × ${rounds})`,
      ok: enforced === gateways * rounds,
      detail: `${enforced}/${gateways * rounds}`,
    });
    assertions.push({
      name: 'distribution: every gateway installed every revision',
      ok: samples.every(Number.isFinite),
      detail: `${samples.filter(Number.isFinite).length}/${samples.length}`,
    });
    return summarize(samples.filter(Number.isFinite));
  } finally {
    await Promise.all(gws.map((g) => g.stop()));
    rmSync(root, { recursive: true, force: true });
  }
}

async function exportRate(
  nats: NatsServer,
  events: number,
  assertions: AssertionResult[],
): Promise<{ rate: number; seconds: number }> {
  const root = mkdtempSync(join(tmpdir(), 'fleet-export-'));
  try {
    const sessionDb = join(root, 'session.db');
    const w = new LedgerWriter(sessionDb, {
      session_id: 'bench-export',
      profile: 'balanced',
      celgate_version: 'bench',
      config: {},
    });
    const decision = {
      action: 'block' as const,
      rule_id: 'bench-rule',
      reason: 'benchmark',
      mode: 'enforce' as const,
      matches: [],
      findings: [],
      errors: [],
      generation: 1,
      eval_ns: 900,
    };
    for (let i = 0; i < events; i++) {
      const e = dnsRequestEvent(
        { session_id: 'bench-export' },
        { qname: `q${i}.export.bench.test`, qtype: 'A', qclass: 'IN', transport: 'udp' },
      );
      w.decision(e, decision);
      w.dns({
        ...policyFields(e, decision),
        qname: e.dns.request.qname,
        qtype: 'A',
        transport: 'udp',
        rcode: 'NXDOMAIN',
        answers: [],
        upstream_ms: null,
        cached: false,
      });
    }
    w.flush();
    let marks: Record<string, number> = {};
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const t0 = performance.now();
    let t1 = 0;
    const exporter = new FleetExporter(
      {
        auth: {
          servers: [nats.url],
          token: null,
          user: null,
          password: null,
          creds: null,
          tls: null,
        },
        gatewayId: 'bench-export',
        sessionDb,
        stream: 'CELGATE_EVENTS',
        replicas: 1,
        duplicateWindowS: 3600,
        batch: 1024,
        pollMs: 50,
      },
      {
        setWatermarks: (m) => {
          marks = { ...marks, ...m };
          if (marks.event_rows === events && marks.dns_events === events) {
            t1 = performance.now();
            done();
          }
        },
      },
      (message) => {
        throw new Error(`exporter failed: ${message}`);
      },
    );
    await Promise.race([finished, sleep(120_000)]);
    await exporter.close();
    w.close();
    const nc = await connect({ servers: nats.url });
    const info = await (
      await jetstreamManager(nc)
    ).streams.info('CELGATE_EVENTS', { subjects_filter: 'celgate.events.bench-export.>' });
    await nc.close();
    const stored = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    assertions.push({
      name: `export: the stream holds exactly the 2 × ${events} rows`,
      ok: t1 > 0 && stored === 2 * events,
      detail: `${stored} messages`,
    });
    const seconds = (t1 - t0) / 1000;
    return { rate: events / seconds, seconds };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function enforcement(
  nats: NatsServer,
  seconds: number,
  rate: number,
  assertions: AssertionResult[],
): Promise<{ on: Summary; off: Summary }> {
  const root = mkdtempSync(join(tmpdir(), 'fleet-enf-'));
  const zone = 'blocked.fleet.bench.test';
  try {
    const on = await fleetGateway(join(root, 'on'), nats, 'bench-on', true);
    mkdirSync(join(root, 'off'));
    const off = await startBenchGateway(
      join(root, 'off'),
      { dns: { listen: '127.0.0.1:0', upstreams: [] } },
      { dropLogsAfterReady: true },
    );
    for (const gw of [on, off]) {
      const put = await gw.api('PUT', '/v1/rules/fleet-bench-block', {
        condition: `dns.request.qname.endsWith("${zone}")`,
        action: 'block',
        reason: 'benchmark zone',
      });
      if (put.status >= 300) throw new Error(`cannot install the rule: ${put.text}`);
    }
    const client = fileURLToPath(new URL('./fleet-dns-client.js', import.meta.url));
    const { stdout } = await exec(
      process.execPath,
      [
        client,
        JSON.stringify({ ports: [udpPort(on), udpPort(off)], rounds: 6, seconds, rate, zone }),
      ],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    const report = JSON.parse(stdout) as FleetClientReport;
    const [onMs, offMs] = report.ms as [number[], number[]];
    assertions.push({
      name: 'enforcement: every lookup was refused (NXDOMAIN) on both gateways',
      ok: report.nxdomain[0] === onMs.length && report.nxdomain[1] === offMs.length,
      detail: `${report.nxdomain.join('/')} of ${onMs.length}/${offMs.length}`,
    });
    // The exporting gateway published what it decided.
    let h = (await on.api('GET', '/v1/health')).json.fleet.export;
    for (
      const deadline = Date.now() + 30_000;
      (h.backlog > 0 || h.published < onMs.length) && Date.now() < deadline;
    ) {
      await sleep(200);
      h = (await on.api('GET', '/v1/health')).json.fleet.export;
    }
    assertions.push({
      name: 'enforcement: the exporting gateway published its rows',
      ok: h.backlog === 0 && h.published >= 2 * onMs.length,
      detail: `published ${h.published}, backlog ${h.backlog}`,
    });
    await Promise.all([on.stop(), off.stop()]);
    return { on: summarize(onMs), off: summarize(offMs) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export async function run(): Promise<Artifact> {
  if (!HAVE_NATS) {
    return writeArtifact({
      kind: 'guest',
      name: 'fleet',
      results: {},
      status: 'skipped',
      skip_reason: 'nats-server is not installed (apt-get install nats-server)',
    });
  }
  const gateways = arg('gateways', 10);
  const rounds = arg('rounds', 20);
  const events = arg('events', 100_000);
  const seconds = arg('seconds', 2);
  const rate = arg('rate', 2000);
  const assertions: AssertionResult[] = [];
  const nats = await startNats();
  try {
    const only = process.argv.includes('--export-only');
    if (process.argv.includes('--enforcement-only')) {
      const enf = await enforcement(nats, seconds, rate, assertions);
      process.stderr.write(
        `enforcement: on ${enf.on.median.toFixed(4)} ms, off ${enf.off.median.toFixed(4)} ms, ratio ${(enf.on.median / enf.off.median).toFixed(3)}; ${assertions.map((a) => `${a.ok ? 'ok' : 'FAIL'} ${a.name}`).join('; ')}\n`,
      );
      process.exit(0);
    }
    process.stderr.write(`fleet: export of ${events} events\n`);
    const exp = await exportRate(nats, events, assertions);
    if (only) {
      process.stderr.write(`export: ${Math.round(exp.rate)} events/s\n`);
      process.exit(0);
    }
    process.stderr.write(`fleet: distribution to ${gateways} gateways, ${rounds} revisions\n`);
    const dist = await distribution(nats, gateways, rounds, assertions);
    process.stderr.write(
      `fleet: enforcement with export on vs off, 6 rounds × ${seconds} s each at ${rate} lookups/s\n`,
    );
    const enf = await enforcement(nats, seconds, rate, assertions);
    const ratio = enf.on.median / enf.off.median;
    assertions.push({
      name: `goal: a pack change is installed on ${gateways} gateways within ${DISTRIBUTION_P99_GOAL_MS} ms at p99`,
      ok: dist.p99 <= DISTRIBUTION_P99_GOAL_MS,
      detail: `p99 ${dist.p99.toFixed(1)} ms, p50 ${dist.median.toFixed(1)} ms`,
    });
    assertions.push({
      name: `goal: export ≥ ${EXPORT_GOAL_EVENTS_PER_S} events/s`,
      ok: exp.rate >= EXPORT_GOAL_EVENTS_PER_S,
      detail: `${Math.round(exp.rate)} events/s (${events} events in ${exp.seconds.toFixed(2)} s)`,
    });
    assertions.push({
      name: `goal: enforcement with export on ≤ ${ENFORCEMENT_RATIO_GOAL}× off (median)`,
      ok: ratio <= ENFORCEMENT_RATIO_GOAL,
      detail: `${ratio.toFixed(3)}× (${enf.on.median.toFixed(3)} vs ${enf.off.median.toFixed(3)} ms)`,
    });
    return writeArtifact({
      kind: 'guest',
      name: 'fleet',
      results: {
        distribution_ms: dist,
        enforcement_export_on_ms: enf.on,
        enforcement_export_off_ms: enf.off,
      },
      assertions,
      runs: rounds,
      notes: {
        gateways,
        rounds,
        events,
        lookups_per_s: rate,
        export_events_per_s: Math.round(exp.rate),
        export_seconds: exp.seconds,
        enforcement_ratio: ratio,
        load_average: (await import('node:os')).loadavg(),
      },
    });
  } finally {
    await nats.stop();
  }
}

await runIfMain(import.meta.url, run);
