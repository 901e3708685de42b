/**
 * The one JSON artifact format every celgate benchmark writes (micro suites, guest lanes, peers).
 * Owns: the schema, summary statistics, host/git/run-id capture and writing the file under
 * `benchmarks/security-engine/`. Must not: run benchmarks, decide gates or print tables.
 *
 * API (keep it small — other benches import it):
 *   summarize(values)                       → Summary (ms in, ms out; raw values kept)
 *   fromTinybench(tasks)                    → Record<name, Summary> from tinybench Task results
 *   writeArtifact({kind, name, results, assertions, ...}) → Artifact (also written to disk)
 * Micro bench modules export `async function run(): Promise<Artifact>` that returns writeArtifact(...).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACT_SCHEMA = 'celgate.benchmark-artifact/v1';
export const ARTIFACT_VERSION = 1;
/** Where artifacts go, relative to the repository root; CELGATE_BENCHMARK_DIR overrides it. */
export const ARTIFACT_DIR = 'benchmarks/security-engine';

export type ArtifactKind = 'micro' | 'guest' | 'peers';
export type ArtifactStatus = 'passed' | 'failed' | 'skipped';

/** Distribution of one measured quantity. Values are milliseconds unless `unit` says otherwise. */
export interface Summary {
  unit: string;
  n: number;
  min: number;
  mean: number;
  median: number;
  p95: number;
  p99: number;
  max: number;
  /** Raw samples, in measurement order (may be capped for huge tinybench runs; see `values_total`). */
  values: number[];
  values_total: number;
}

/** One check made before a time was recorded (the denial reached the client, N rows in session.db, …). */
export interface AssertionResult {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface HostInfo {
  cpu_model: string;
  cores: number;
  memory_bytes: number;
  os: string;
  node: string;
}

export interface Artifact {
  schema: typeof ARTIFACT_SCHEMA;
  version: number;
  kind: ArtifactKind;
  name: string;
  status: ArtifactStatus;
  skip_reason?: string;
  run_id: string;
  created_at: string;
  git: { commit: string; dirty: boolean };
  host: HostInfo;
  /** How many operations were measured per result (the lane's N, or tinybench's sample count). */
  runs: number;
  results: Record<string, Summary>;
  assertions: AssertionResult[];
  /** Free-form facts a reader needs (rule id, ports, ratios …). */
  notes?: Record<string, unknown>;
  /** Absolute path the artifact was written to (not part of the file). */
  path?: string;
}

export interface ArtifactInput {
  kind: ArtifactKind;
  name: string;
  results: Record<string, Summary>;
  assertions?: AssertionResult[];
  runs?: number;
  status?: ArtifactStatus;
  skip_reason?: string;
  notes?: Record<string, unknown>;
}

/** Upper bound on raw values stored per result, so a million-sample micro bench stays readable. */
export const MAX_RAW_VALUES = 10_000;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Summary statistics of raw samples (linear interpolation between order statistics). */
export function summarize(values: readonly number[], unit = 'ms'): Summary {
  const finite = values.filter((v) => Number.isFinite(v));
  const sorted = [...finite].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n === 0 ? Number.NaN : finite.reduce((s, v) => s + v, 0) / n;
  return {
    unit,
    n,
    min: n === 0 ? Number.NaN : sorted[0]!,
    mean,
    median: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: n === 0 ? Number.NaN : sorted[n - 1]!,
    values: finite.slice(0, MAX_RAW_VALUES),
    values_total: n,
  };
}

/** Structural view of a tinybench 6 Task, so this module does not depend on tinybench's types. */
interface TinybenchTaskLike {
  name: string;
  result?: {
    state?: string;
    error?: unknown;
    latency?: { samples?: readonly number[] | undefined; mean?: number };
  };
}

/** Summaries of tinybench task latencies (ms). Needs `retainSamples: true`; errored tasks throw. */
export function fromTinybench(tasks: readonly TinybenchTaskLike[]): Record<string, Summary> {
  const out: Record<string, Summary> = {};
  for (const task of tasks) {
    const r = task.result;
    if (r?.state === 'errored')
      throw new Error(`bench task "${task.name}" failed: ${String(r.error)}`);
    const samples = r?.latency?.samples;
    if (samples === undefined || samples.length === 0) {
      throw new Error(
        `bench task "${task.name}" kept no samples (construct Bench with retainSamples: true)`,
      );
    }
    out[task.name] = summarize(samples);
  }
  return out;
}

let cachedGit: { commit: string; dirty: boolean } | undefined;
function gitState(root: string): { commit: string; dirty: boolean } {
  if (cachedGit !== undefined) return cachedGit;
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: root,
      encoding: 'utf8',
    });
    cachedGit = { commit, dirty: status.trim() !== '' };
  } catch {
    cachedGit = { commit: 'unknown', dirty: true };
  }
  return cachedGit;
}

export function hostInfo(): HostInfo {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory_bytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

let fallbackRunId: string | undefined;
/** CELGATE_BENCHMARK_RUN_ID, or one id per process so all artifacts of one run share it. */
export function runId(): string {
  const env = process.env.CELGATE_BENCHMARK_RUN_ID;
  if (env !== undefined && env !== '') return env;
  fallbackRunId ??= `local-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
  return fallbackRunId;
}

/** The repository root: bench/ sits directly under it (also when compiled to dist/bench/). */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join('dist', 'bench')}`)
    ? resolve(here, '..', '..')
    : resolve(here, '..');
}

export function artifactDir(): string {
  return resolve(repoRoot(), process.env.CELGATE_BENCHMARK_DIR ?? ARTIFACT_DIR);
}

export function makeArtifact(input: ArtifactInput): Artifact {
  const assertions = input.assertions ?? [];
  const status: ArtifactStatus =
    input.status ?? (assertions.every((a) => a.ok) ? 'passed' : 'failed');
  const firstN = Object.values(input.results)[0]?.n ?? 0;
  const artifact: Artifact = {
    schema: ARTIFACT_SCHEMA,
    version: ARTIFACT_VERSION,
    kind: input.kind,
    name: input.name,
    status,
    run_id: runId(),
    created_at: new Date().toISOString(),
    git: gitState(repoRoot()),
    host: hostInfo(),
    runs: input.runs ?? firstN,
    results: input.results,
    assertions,
  };
  if (input.skip_reason !== undefined) artifact.skip_reason = input.skip_reason;
  if (input.notes !== undefined) artifact.notes = input.notes;
  return artifact;
}

/** Builds the artifact and writes `<dir>/<kind>-<name>.json`. Returns it with `path` set. */
export function writeArtifact(input: ArtifactInput): Artifact {
  const artifact = makeArtifact(input);
  const dir = artifactDir();
  mkdirSync(dir, { recursive: true });
  const safe = `${input.kind}-${input.name}`.replace(/[^A-Za-z0-9_.-]+/g, '_');
  const path = join(dir, `${safe}.json`);
  writeFileSync(path, `${JSON.stringify(artifact, null, 2)}\n`);
  return { ...artifact, path };
}
