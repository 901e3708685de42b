/**
 * DNS interception benchmarks (issue #5). Each measurement asserts what it measures before it is
 * recorded; artifacts go under benchmarks/security-engine/:
 *
 *  1. micro `dns-micro` (tinybench): parse one query (the `a-example.bin` fixture) and
 *     decide + NXDOMAIN encode (dns.request event → engine with a block rule → denial bytes).
 *  2. e2e `dns-udp-e2e`: the real gateway (`celgate start`, `dns.listen` on loopback UDP), a
 *     loopback authoritative upstream (bench/dns-authority.ts) and the measuring client
 *     (bench/dns-udp-client.ts), each in its own process. Blocked lookups over UDP, one at a time:
 *     gate p50 ≤ 0.3 ms (reference mean 2.3 ms); each answer must be NXDOMAIN for the same id and
 *     session.db must hold one dns_events row per lookup naming the rule. Then allowed lookups served
 *     from the gateway's cache vs. the same query sent straight to the upstream, interleaved in the
 *     same run: gate median(cached via celgate) ≤ 1.5 × median(direct).
 *
 * usage: npm run -s build && node dist/bench/dns.js [--runs N]   (exits 1 when a gate fails)
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dnsRequestEvent } from '../src/events/build.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { RuleRegistry } from '../src/policy/registry.js';
import { parseQuery } from '../src/transport/dns/parse.js';
import { denialResponse } from '../src/transport/dns/synth.js';
import {
  repoRoot,
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
} from './artifact.js';
import { spawnAuthority } from './dns-authority.js';
import { ALLOWED_ADDRESS, ALLOWED_NAME, type ClientReport } from './dns-udp-client.js';
import { startBenchGateway } from './guest-gateway.js';
import { printArtifact, runTasks } from './micro-kit.js';

export const BLOCKED_P50_GOAL_MS = 0.3;
export const CACHED_RATIO_GOAL = 1.5;
const RULE_ID = 'bench-dns-deny';
const RULE = {
  id: RULE_ID,
  description: 'benchmark: deny one zone',
  condition: 'dns.request.qname.endsWith(".blocked.bench.test")',
  action: 'block' as const,
  reason: 'benchmark denial',
  priority: 0,
};

const fixture = (file: string) => readFileSync(join(repoRoot(), 'test', 'fixtures', 'dns', file));

/** 1. Parse, and decide + encode the denial, in process. */
export async function benchMicro(): Promise<Artifact> {
  const raw = fixture('a-example.bin');
  const registry = new RuleRegistry();
  const installed = registry.installRaw(
    { ...RULE, condition: 'dns.request.qname == "example.com"' },
    'bench',
  );
  if (!installed.ok) throw new Error(JSON.stringify(installed.issues));
  const engine = new PolicyEngine(registry);
  const parsed = parseQuery(raw);
  if (!parsed.ok) throw new Error(parsed.error.message);
  const query = parsed.query;
  const q = query.questions[0]!;
  const decideAndDeny = () => {
    const event = dnsRequestEvent(
      { session_id: 'bench' },
      { qname: q.qname, qtype: q.qtype, qclass: q.qclass, transport: 'udp' },
    );
    const d = engine.decide(event);
    return { d, bytes: denialResponse(query, d.action === 'block' ? 3 : 2) };
  };
  // Assert before measuring: the parse yields the fixture's question; the denial is an NXDOMAIN by the rule.
  const check = decideAndDeny();
  const assertions: AssertionResult[] = [
    { name: 'parse yields example.com A', ok: q.qname === 'example.com' && q.qtype === 'A' },
    {
      name: 'decision is block by the rule',
      ok: check.d.action === 'block' && check.d.rule_id === RULE_ID,
      detail: check.d.reason,
    },
    {
      name: 'denial is NXDOMAIN with the id and question echoed',
      ok:
        (check.bytes.readUInt16BE(2) & 0xf) === 3 &&
        check.bytes.readUInt16BE(0) === query.id &&
        check.bytes.subarray(12, 12 + query.questionBytes.length).equals(query.questionBytes),
    },
  ];
  const results = await runTasks([
    { name: 'dns: parse one query', batch: 200, fn: () => void parseQuery(raw) },
    { name: 'dns: decide + NXDOMAIN encode', batch: 200, fn: () => void decideAndDeny() },
  ]);
  return writeArtifact({
    kind: 'micro',
    name: 'dns-micro',
    results,
    assertions,
    status: assertions.every((a) => a.ok) ? 'passed' : 'failed',
  });
}

const WARMUP = 200;

/** Runs the measuring client (bench/dns-udp-client.ts) in its own process and returns its report. */
function runClient(gateway: number, upstream: number, runs: number): Promise<ClientReport> {
  const js = join(repoRoot(), 'dist', 'bench', 'dns-udp-client.js');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [js, JSON.stringify({ gateway, upstream, runs, warmup: WARMUP })],
      { maxBuffer: 64 << 20, timeout: 300_000 },
      (err, stdout, stderr) => {
        if (err !== null)
          return reject(new Error(`dns bench client failed: ${err.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout.trim()) as ClientReport);
        } catch (e) {
          reject(
            new Error(
              `dns bench client printed no report: ${(e as Error).message}\n${stdout.slice(0, 500)}`,
            ),
          );
        }
      },
    );
  });
}

/** 2. End to end through the gateway's UDP listener. */
export async function benchEndToEnd(runs: number): Promise<Artifact> {
  // The upstream runs in its own process, like the gateway, so both paths cross one process boundary.
  const upstream = await spawnAuthority({
    [ALLOWED_NAME]: [{ type: 'A', data: ALLOWED_ADDRESS, ttl: 3600 }],
  });
  const work = mkdtempSync(join(tmpdir(), 'celgate-bench-dns-'));
  let gw: Awaited<ReturnType<typeof startBenchGateway>> | null = null;
  try {
    gw = await startBenchGateway(work, {
      dns: { listen: '127.0.0.1:0', upstreams: [upstream.address], timeout_ms: 1000 },
      http: { proxy: 'off' },
    });
    const assertions: AssertionResult[] = [];
    const put = await gw.api('PUT', `/v1/rules/${RULE_ID}`, RULE);
    assertions.push({
      name: 'rule installed through the control API',
      ok: put.status === 201 || put.status === 200,
      detail: `HTTP ${put.status}`,
    });
    const port = Number(gw.listeners.dns_udp!.split(':').pop());

    const before = (await upstream.counts()).udp;
    const report = await runClient(port, upstream.port, runs);
    const upstreamSaw = (await upstream.counts()).udp - before;
    const directTotal = runs + WARMUP;
    assertions.push({
      name: `all ${runs} blocked lookups answered NXDOMAIN`,
      ok: report.blocked_nxdomain === runs,
      detail: `${report.blocked_nxdomain}/${runs}`,
    });
    assertions.push({
      name: 'allowed lookups return the upstream address (celgate and direct)',
      ok: report.allowed_correct === runs && report.primed_rcode === 0,
      detail: `${report.allowed_correct}/${runs}`,
    });
    // Only the priming query and the direct ones reached the upstream: celgate answered from its cache.
    assertions.push({
      name: 'celgate answered from its cache',
      ok: upstreamSaw === directTotal + 1,
      detail: `upstream saw ${upstreamSaw} queries; ${directTotal} direct + 1 priming expected`,
    });

    const results = {
      'dns: blocked lookup via UDP listener': summarize(report.blocked_ms),
      'dns: allowed lookup served from cache': summarize(report.cached_ms),
      'dns: direct query to the local upstream': summarize(report.direct_ms),
    };
    const p50 = results['dns: blocked lookup via UDP listener'].median;
    const ratio =
      results['dns: allowed lookup served from cache'].median /
      results['dns: direct query to the local upstream'].median;
    assertions.push({
      name: `goal: blocked p50 ≤ ${BLOCKED_P50_GOAL_MS} ms`,
      ok: p50 <= BLOCKED_P50_GOAL_MS,
      detail: `p50 ${p50.toFixed(3)} ms (reference mean 2.3 ms)`,
    });
    assertions.push({
      name: `goal: cached ≤ ${CACHED_RATIO_GOAL}× direct`,
      ok: ratio <= CACHED_RATIO_GOAL,
      detail: `${ratio.toFixed(2)}×`,
    });

    // The ledger holds one row per blocked lookup (warm-up included), each naming the rule.
    await gw.stop();
    const rows = gw.ledgerRows('dns_events', RULE_ID);
    assertions.push({
      name: 'session.db dns_events rows name the rule',
      ok: rows.length === runs + WARMUP && rows.every((r) => r.decision === 'block'),
      detail: `${rows.length} rows for ${runs + WARMUP} lookups`,
    });
    const logged = gw.logs().filter((l) => l.rule_id === RULE_ID).length;
    const summaryLine = gw.logs().find((l) => l.msg === 'summary');
    const errorLines = gw
      .logs()
      .filter((l) => l.level === 'error' || l.level === 'fatal')
      .slice(0, 5);
    assertions.push({
      name: 'log lines name the rule',
      ok: logged >= runs + WARMUP,
      detail: `${logged} lines`,
    });
    return writeArtifact({
      kind: 'guest',
      name: 'dns-udp-e2e',
      results,
      assertions,
      runs,
      status: assertions.every((a) => a.ok) ? 'passed' : 'failed',
      notes: {
        rule_id: RULE_ID,
        cached_to_direct_ratio: ratio,
        gateway_summary: summaryLine ?? null,
        gateway_errors: errorLines,
        load_average: os.loadavg(),
        client: 'bench/dns-udp-client.ts in its own process, node dgram, one query in flight',
        upstream: 'bench/dns-authority.ts on loopback, own process',
      },
    });
  } finally {
    await gw?.stop().catch(() => {});
    await upstream.close();
    rmSync(work, { recursive: true, force: true });
  }
}

export async function run(runs = 1000): Promise<Artifact[]> {
  return [await benchMicro(), await benchEndToEnd(runs)];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 1000;
  const artifacts = await run(runs);
  for (const a of artifacts) printArtifact(a);
  process.exitCode = artifacts.some((a) => a.status === 'failed') ? 1 : 0;
}
