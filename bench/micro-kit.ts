/**
 * Helpers for tinybench micro suites: batched tasks (so sub-microsecond work is not dominated by
 * the timer), per-operation summaries, goals recorded as assertions, and a table printer for
 * running a suite on its own (`node dist/bench/<suite>.js`).
 */
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { summarize, type Artifact, type AssertionResult, type Summary } from './artifact.js';

export interface MicroTask {
  name: string;
  /** Operations per timed call; per-operation time = sample / batch. */
  batch: number;
  fn: () => void;
}

export interface Goal {
  /** Result name, e.g. "Evaluate full HTTP policy as last match across 100 rules". */
  result: string;
  /** Upper bound on the median, microseconds (or a ratio, see `ratioTo`). */
  max_us?: number;
  /** Bound on median(result) / median(ratioTo). */
  ratioTo?: string;
  max_ratio?: number;
  reference?: string;
}

/** Runs the tasks and returns per-operation summaries in microseconds. */
export async function runTasks(
  tasks: readonly MicroTask[],
  options: { time?: number } = {},
): Promise<Record<string, Summary>> {
  const bench = new Bench({
    time: options.time ?? Number(process.env.CELGATE_BENCH_TIME_MS ?? 300),
    warmupTime: 100,
    retainSamples: true,
    throws: true,
  });
  for (const t of tasks) {
    const { fn, batch } = t;
    bench.add(t.name, () => {
      for (let i = 0; i < batch; i++) fn();
    });
  }
  await bench.run();
  const out: Record<string, Summary> = {};
  for (const task of bench.tasks) {
    const spec = tasks.find((t) => t.name === task.name)!;
    const samples =
      task.result && 'latency' in task.result ? (task.result.latency.samples ?? []) : [];
    if (samples.length === 0) throw new Error(`bench task "${task.name}" produced no samples`);
    out[task.name] = summarize(
      samples.map((ms) => (ms * 1000) / spec.batch),
      'us',
    );
  }
  return out;
}

export function checkGoals(
  results: Record<string, Summary>,
  goals: readonly Goal[],
): AssertionResult[] {
  return goals.map((g) => {
    const r = results[g.result];
    if (r === undefined) return { name: `goal: ${g.result}`, ok: false, detail: 'no such result' };
    if (g.ratioTo !== undefined) {
      const base = results[g.ratioTo];
      const ratio = base === undefined ? Number.NaN : r.median / base.median;
      return {
        name: `goal: ${g.result} ≤ ${g.max_ratio}× ${g.ratioTo}`,
        ok: ratio <= (g.max_ratio ?? Number.POSITIVE_INFINITY),
        detail: `${ratio.toFixed(1)}× (${r.median.toFixed(3)} µs vs ${base?.median.toFixed(4)} µs)${g.reference ? `; reference ${g.reference}` : ''}`,
      };
    }
    return {
      name: `goal: ${g.result} ≤ ${g.max_us} µs`,
      ok: r.median <= (g.max_us ?? Number.POSITIVE_INFINITY),
      detail: `median ${r.median.toFixed(3)} µs${g.reference ? `; reference ${g.reference}` : ''}`,
    };
  });
}

export function printArtifact(a: Artifact): void {
  const rows = [['result', 'unit', 'median', 'mean', 'p99', 'samples']];
  for (const [name, s] of Object.entries(a.results))
    rows.push([
      name,
      s.unit,
      s.median.toFixed(3),
      s.mean.toFixed(3),
      s.p99.toFixed(3),
      String(s.n),
    ]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write(`\n${a.name} (${a.status}) → ${a.path ?? ''}\n`);
  for (const r of rows)
    process.stdout.write(`${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}\n`);
  for (const x of a.assertions)
    process.stdout.write(`${x.ok ? 'ok  ' : 'FAIL'} ${x.name}: ${x.detail ?? ''}\n`);
}

/** Lets a suite module run on its own: prints its artifacts and exits 1 when one failed. */
export async function runIfMain(
  moduleUrl: string,
  run: () => Promise<Artifact | Artifact[]>,
): Promise<void> {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  const result = await run();
  const artifacts = Array.isArray(result) ? result : [result];
  for (const a of artifacts) printArtifact(a);
  process.exitCode = artifacts.some((a) => a.status === 'failed') ? 1 : 0;
}
