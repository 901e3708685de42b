import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACT_SCHEMA, fromTinybench, summarize, writeArtifact } from '../../bench/artifact.js';

describe('benchmark artifact writer', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-artifact-'));
    process.env.CELGATE_BENCHMARK_DIR = dir;
    process.env.CELGATE_BENCHMARK_RUN_ID = 'run-test-1';
  });
  afterAll(() => {
    delete process.env.CELGATE_BENCHMARK_DIR;
    delete process.env.CELGATE_BENCHMARK_RUN_ID;
    rmSync(dir, { recursive: true, force: true });
  });

  it('summarizes raw values with interpolated percentiles and keeps them', () => {
    const s = summarize([5, 1, 3, 2, 4]);
    expect(s).toMatchObject({
      n: 5,
      min: 1,
      max: 5,
      mean: 3,
      median: 3,
      unit: 'ms',
      values_total: 5,
    });
    expect(s.p95).toBeCloseTo(4.8);
    expect(s.values).toEqual([5, 1, 3, 2, 4]);
  });

  it('reports NaN statistics for no samples instead of throwing', () => {
    expect(summarize([]).n).toBe(0);
    expect(summarize([]).mean).toBeNaN();
  });

  it('writes schema, run id, git, host and assertions, and fails when an assertion failed', () => {
    const a = writeArtifact({
      kind: 'guest',
      name: 'unit lane',
      results: { op: summarize([1, 2]) },
      assertions: [
        { name: 'client saw denial', ok: true },
        { name: 'counter moved', ok: false, detail: '0 != 2' },
      ],
    });
    expect(a.status).toBe('failed');
    const onDisk = JSON.parse(readFileSync(a.path!, 'utf8'));
    expect(onDisk.schema).toBe(ARTIFACT_SCHEMA);
    expect(onDisk.run_id).toBe('run-test-1');
    expect(onDisk.runs).toBe(2);
    expect(onDisk.git.commit).toMatch(/^[0-9a-f]{40}$|^unknown$/);
    expect(onDisk.host.cores).toBeGreaterThan(0);
    expect(onDisk.assertions).toHaveLength(2);
    expect(a.path).toContain('guest-unit_lane.json');
  });

  it('reads tinybench samples and refuses tasks that kept none', () => {
    const ok = fromTinybench([
      { name: 't', result: { state: 'completed', latency: { samples: [0.1, 0.2] } } },
    ]);
    expect(ok.t!.n).toBe(2);
    expect(() =>
      fromTinybench([{ name: 'x', result: { state: 'completed', latency: {} } }]),
    ).toThrow(/retainSamples/);
    expect(() =>
      fromTinybench([{ name: 'y', result: { state: 'errored', error: 'boom' } }]),
    ).toThrow(/boom/);
  });
});
