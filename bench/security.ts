/**
 * `npm run bench:security` — the security benchmark orchestrator (DESIGN §10, issue #7).
 *
 *  1. Micro suites: each module listed in MICRO_SUITES (dist/bench/<name>.js) exports
 *     `async function run(): Promise<Artifact | Artifact[]>` and writes its own artifacts through
 *     bench/artifact.ts. Each runs in a process of its own (bench/run-suite.ts), so no suite's heap
 *     or JIT state colours the next one's numbers. A listed module that is not present is reported
 *     as missing.
 *  2. Guest lanes (process, HTTP, DNS, MCP; bench/guest-lanes.ts): real gateway + namespace guest,
 *     N blocked operations, assertions before any time is recorded. Skipped, and said so, when
 *     namespaces are unavailable.
 *  3. Gates (bench/gates.json) over the lane artifacts; a table; exit 1 when a lane or suite failed
 *     or a reference/tight gate did not hold. Goal gates (issue #7's targets) are reported as
 *     met or missed but do not fail the run. Exit 0 with skipped lanes unless --require-guest.
 *
 * usage: node dist/bench/security.js [--runs N] [--warmup W] [--lanes process,http,dns,mcp] [--no-micro]
 *        [--micro a,b] [--break] [--require-guest]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flagsOrExit } from './args.js';
import { artifactDir, repoRoot, runId, type Artifact } from './artifact.js';
import { dnsLane } from './guest-lane-dns.js';
import { httpLane } from './guest-lane-http.js';
import { mcpLane } from './guest-lane-mcp.js';
import { processLane } from './guest-lane-process.js';
import {
  DEFAULT_WARMUP,
  LANE_NAMES,
  runLane,
  type LaneName,
  type LaneSpec,
} from './guest-lanes.js';
import { EXIT_MISSING, RESULT_MARK } from './run-suite.js';

/** Micro suites of the other areas, by module name under bench/. Add yours here. */
export const MICRO_SUITES = [
  'policy',
  'detection',
  'ledger',
  'metrics',
  'certs',
  'http',
  'dns',
  'mcp',
  'report',
];
export const DEFAULT_RUNS = 8;
/** A micro suite that has not finished after this long is reported as failed and left behind. */
export const MICRO_SUITE_TIMEOUT_MS = 300_000;
export const MAX_RUNS = 10_000;

const LANES: Record<LaneName, LaneSpec> = {
  process: processLane,
  http: httpLane,
  dns: dnsLane,
  mcp: mcpLane,
};

export interface Gate {
  id: string;
  lane: LaneName;
  result: string;
  stat: 'mean' | 'median' | 'p95' | 'p99' | 'max';
  max_ms: number;
  kind: 'reference' | 'goal' | 'tight';
  note?: string;
}

export interface GateOutcome {
  gate: Gate;
  /** `missed` is a goal gate that did not hold: reported, never fails the run. */
  status: 'pass' | 'fail' | 'missed' | 'skipped';
  value: number | null;
  detail: string;
}

export function loadGates(file = join(repoRoot(), 'bench', 'gates.json')): Gate[] {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { gates?: unknown };
  if (!Array.isArray(raw.gates)) throw new Error(`${file}: "gates" must be a list`);
  return raw.gates.map((g, i) => {
    const x = g as Gate;
    if (
      !LANE_NAMES.includes(x.lane) ||
      typeof x.result !== 'string' ||
      typeof x.max_ms !== 'number' ||
      !['mean', 'median', 'p95', 'p99', 'max'].includes(x.stat)
    ) {
      throw new Error(
        `${file}: gates[${i}] needs lane, result, stat (mean|median|p95|p99|max) and max_ms`,
      );
    }
    return x;
  });
}

/** Judges gates against lane artifacts. A failed lane fails its gates; a skipped lane skips them. */
export function judge(gates: readonly Gate[], lanes: ReadonlyMap<string, Artifact>): GateOutcome[] {
  return gates.map((gate) => {
    const a = lanes.get(gate.lane);
    if (a === undefined) return { gate, status: 'skipped', value: null, detail: 'lane not run' };
    if (a.status === 'skipped')
      return { gate, status: 'skipped', value: null, detail: a.skip_reason ?? 'skipped' };
    if (a.status !== 'passed')
      return {
        gate,
        status: 'fail',
        value: null,
        detail: 'lane assertions failed: no time recorded',
      };
    const s = a.results[gate.result];
    if (s === undefined || s.n === 0)
      return { gate, status: 'fail', value: null, detail: `no "${gate.result}" samples` };
    const value = s[gate.stat];
    const held = value <= gate.max_ms;
    const status = held ? 'pass' : gate.kind === 'goal' ? 'missed' : 'fail';
    return {
      gate,
      status,
      value,
      detail: `${gate.stat} ${value.toFixed(3)} ms vs ≤ ${gate.max_ms} ms`,
    };
  });
}

export const USAGE = `usage: npm run bench:security -- [options]
       node dist/bench/security.js [options]

Runs the micro suites (each in its own process) and the guest-originated lanes (a real gateway, a
network-namespace guest, N blocked operations each), checks bench/gates.json, writes one JSON per
suite and lane under benchmarks/security-engine/ and exits 1 when an assertion or a gate fails.

options:
  --runs N          blocked operations per guest lane (default ${DEFAULT_RUNS}, max ${MAX_RUNS})
  --warmup W        warm-up operations per lane before the timed ones (default ${DEFAULT_WARMUP})
  --lanes a,b       guest lanes to run: ${LANE_NAMES.join(',')} (default all; '' for none)
  --micro a,b       micro suites to run: ${MICRO_SUITES.join(',')} (default all)
  --no-micro        skip the micro suites
  --break           install each lane's rule with a condition that cannot match: the lanes must FAIL
  --require-guest   fail (exit 1) when the guest lanes are skipped (no root / ip / iptables)
  --help            this text

environment:
  CELGATE_BENCHMARK_RUN_ID   run id stamped on every artifact (default local-<time>-<pid>)
`;

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(3));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => pad(cell, widths[c]!)).join('  ')).join('\n');
}

/** Assertions named "goal: …" are the issues' speed goals: reported, like goal gates, not failing. */
export const isGoal = (a: { name: string }) => a.name.startsWith('goal:');

/** failed: some work assertion failed (no time is trustworthy); missed: only speed goals missed. */
export function microStatus(artifacts: readonly Artifact[]): 'passed' | 'missed' | 'failed' {
  const all = artifacts.flatMap((a) => a.assertions);
  if (all.some((a) => !a.ok && !isGoal(a))) return 'failed';
  return all.some((a) => !a.ok) ? 'missed' : 'passed';
}

/** Runs each suite in its own process (bench/run-suite.ts), one after another, with a time limit. */
async function runMicro(
  names: readonly string[],
): Promise<Array<{ name: string; status: string; artifacts: Artifact[]; error?: string }>> {
  const out = [];
  for (const name of names) {
    const r = await runSuiteProcess(name);
    if ('error' in r) out.push({ name, status: r.status, artifacts: [], error: r.error });
    else out.push({ name, status: microStatus(r.artifacts), artifacts: r.artifacts });
  }
  return out;
}

function runSuiteProcess(
  name: string,
): Promise<{ artifacts: Artifact[] } | { status: 'missing' | 'failed'; error: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [join(repoRoot(), 'dist', 'bench', 'run-suite.js'), name],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child
      .stderr!.setEncoding('utf8')
      .on('data', (c: string) => (stderr = (stderr + c).slice(-4096)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, MICRO_SUITE_TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
      // Whatever else the suite printed goes through, as it did when suites ran in this process.
      const rest = stdout.split('\n').filter((l) => l !== '' && !l.startsWith(RESULT_MARK));
      if (rest.length > 0) process.stdout.write(`${rest.join('\n')}\n`);
      const reason = stderr.trim().split('\n').pop() ?? '';
      if (timedOut)
        return resolve({
          status: 'failed',
          error: `timed out after ${MICRO_SUITE_TIMEOUT_MS / 1000} s`,
        });
      if (code === EXIT_MISSING) return resolve({ status: 'missing', error: reason });
      if (code !== 0 || line === undefined)
        return resolve({ status: 'failed', error: reason || `exited with ${code}` });
      try {
        resolve({ artifacts: JSON.parse(line.slice(RESULT_MARK.length)) as Artifact[] });
      } catch (err) {
        resolve({ status: 'failed', error: `unreadable result: ${(err as Error).message}` });
      }
    });
  });
}

export async function main(argv: string[]): Promise<number> {
  const parsed = flagsOrExit(
    argv,
    {
      values: ['--runs', '--warmup', '--lanes', '--micro'],
      switches: ['--no-micro', '--break', '--require-guest'],
    },
    USAGE,
  );
  if (typeof parsed === 'number') return parsed;
  const flag = (name: string) => parsed.values.get(name);
  const runs = Number(flag('--runs') ?? DEFAULT_RUNS);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) {
    process.stderr.write(`--runs must be an integer 1..${MAX_RUNS}\n`);
    return 2;
  }
  const laneNames = (flag('--lanes') ?? LANE_NAMES.join(','))
    .split(',')
    .filter(Boolean) as LaneName[];
  const unknown = laneNames.filter((l) => !LANE_NAMES.includes(l));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown lanes: ${unknown.join(', ')} (known: ${LANE_NAMES.join(', ')})\n`,
    );
    return 2;
  }
  const broken = parsed.switches.has('--break');
  const warmup = Number(flag('--warmup') ?? DEFAULT_WARMUP);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > 10_000) {
    process.stderr.write('--warmup must be an integer 0..10000\n');
    return 2;
  }
  const gates = loadGates();
  process.stdout.write(`celgate bench:security run ${runId()} → ${artifactDir()}\n`);

  let failed = false;
  if (!parsed.switches.has('--no-micro')) {
    const micro = await runMicro(
      (flag('--micro') ?? MICRO_SUITES.join(',')).split(',').filter(Boolean),
    );
    const rows = [['suite', 'status', 'result', 'n', 'mean ms', 'p95 ms', 'note']];
    for (const m of micro) {
      if (m.status === 'failed') failed = true;
      if (m.artifacts.length === 0) rows.push([m.name, m.status, '', '', '', '', m.error ?? '']);
      for (const a of m.artifacts) {
        for (const [k, s] of Object.entries(a.results))
          rows.push([
            `${m.name}/${a.name}`,
            microStatus([a]),
            k,
            String(s.n),
            ms(s.mean),
            ms(s.p95),
            '',
          ]);
        if (Object.keys(a.results).length === 0)
          rows.push([`${m.name}/${a.name}`, a.status, '', '', '', '', a.skip_reason ?? '']);
      }
    }
    process.stdout.write(`\nMicro suites\n${table(rows)}\n`);
    const missed = micro.flatMap((m) =>
      m.artifacts.flatMap((a) =>
        a.assertions
          .filter((x) => !x.ok)
          .map((x) => `${m.name}/${a.name}: ${x.name} — ${x.detail ?? ''}`),
      ),
    );
    if (missed.length > 0)
      process.stdout.write(
        `\nMicro goals missed or assertions failed:\n${missed.map((x) => `  ${x}`).join('\n')}\n`,
      );
  }

  const lanes = new Map<string, Artifact>();
  for (const name of laneNames) {
    process.stdout.write(
      `lane ${name}${broken ? ' (broken rule)' : ''}: running ${runs} operations…\n`,
    );
    lanes.set(name, await runLane(LANES[name], { runs, broken, warmup }));
  }
  const rows = [['lane', 'status', 'result', 'n', 'mean ms', 'median', 'p95', 'max']];
  for (const a of lanes.values()) {
    if (a.status === 'failed') failed = true;
    const entries = Object.entries(a.results);
    if (entries.length === 0)
      rows.push([
        a.name,
        a.status,
        a.skip_reason ?? '(no times: assertions failed)',
        '',
        '',
        '',
        '',
        '',
      ]);
    for (const [k, s] of entries)
      rows.push([a.name, a.status, k, String(s.n), ms(s.mean), ms(s.median), ms(s.p95), ms(s.max)]);
  }
  process.stdout.write(`\nGuest-originated enforcement (runs=${runs})\n${table(rows)}\n`);
  for (const a of lanes.values()) {
    for (const x of a.assertions.filter((y) => !y.ok))
      process.stdout.write(`  FAILED ${a.name}: ${x.name} — ${x.detail ?? ''}\n`);
  }

  const outcomes = judge(gates, lanes);
  const grows = [['gate', 'kind', 'status', 'detail']];
  for (const o of outcomes) {
    if (o.status === 'fail') failed = true;
    grows.push([o.gate.id, o.gate.kind, o.status, o.detail]);
  }
  process.stdout.write(`\nGates (bench/gates.json)\n${table(grows)}\n`);
  const skipped = [...lanes.values()].filter((a) => a.status === 'skipped');
  if (skipped.length > 0) {
    process.stdout.write(`\n${skipped.length} lane(s) SKIPPED: ${skipped[0]!.skip_reason}\n`);
    if (parsed.switches.has('--require-guest')) failed = true;
  }
  process.stdout.write(`\n${failed ? 'FAILED' : 'OK'}: artifacts in ${artifactDir()}\n`);
  return failed ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bench:security crashed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
