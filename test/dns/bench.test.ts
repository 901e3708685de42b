/**
 * Keeps bench/dns.ts honest and runnable: a short run of both suites must pass every check it makes
 * before recording a number (NXDOMAIN for each blocked lookup, cache really used, ledger rows, log
 * lines). Speed gates are reported by the bench, not asserted here.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The built bench (test/global-setup.ts builds dist/): it spawns its helpers as compiled .js files. */
const built = new URL('../../dist/bench/dns.js', import.meta.url).href;
const load = async () => (await import(built)) as typeof import('../../bench/dns.js');

const saved = { dir: process.env.CELGATE_BENCHMARK_DIR, time: process.env.CELGATE_BENCH_TIME_MS };
beforeAll(() => {
  process.env.CELGATE_BENCHMARK_DIR = mkdtempSync(join(tmpdir(), 'celgate-dns-bench-'));
  process.env.CELGATE_BENCH_TIME_MS = '20';
});
afterAll(() => {
  if (saved.dir === undefined) delete process.env.CELGATE_BENCHMARK_DIR;
  else process.env.CELGATE_BENCHMARK_DIR = saved.dir;
  if (saved.time === undefined) delete process.env.CELGATE_BENCH_TIME_MS;
  else process.env.CELGATE_BENCH_TIME_MS = saved.time;
});

describe('bench/dns.ts', () => {
  it('micro suite: asserts parse and NXDOMAIN before timing, and writes its artifact', async () => {
    const { benchMicro } = await load();
    const a = await benchMicro();
    expect(a.assertions.every((x) => x.ok)).toBe(true);
    expect(Object.keys(a.results)).toEqual([
      'dns: parse one query',
      'dns: decide + NXDOMAIN encode',
    ]);
    expect(a.path).toContain(process.env.CELGATE_BENCHMARK_DIR!);
  });

  it('end-to-end suite: every non-speed check holds on a short run against the real gateway', async () => {
    const { benchEndToEnd } = await load();
    const a = await benchEndToEnd(30);
    const checks = a.assertions.filter((x) => !x.name.startsWith('goal:'));
    expect(checks.filter((x) => !x.ok)).toEqual([]);
    expect(checks.length).toBeGreaterThanOrEqual(6);
    expect(a.results['dns: blocked lookup via UDP listener']!.n).toBe(30);
  });
});
