import { afterEach, describe, expect, it, vi } from 'vitest';
import { main, summarizeGcTrace, USAGE } from '../../bench/http-load.js';

// Lines as node 20's --trace-gc prints them, between the gateway's JSON log lines.
const TRACE = [
  '{"level":"info","msg":"ready"}',
  '[1:0x1]      400 ms: Scavenge 10.0 (12.0) -> 8.0 (13.0) MB, 1.50 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
  '[1:0x1]      460 ms: Scavenge 19.0 (21.0) -> 10.0 (21.0) MB, 2.50 / 0.00 ms  (average mu = 1.000, current mu = 1.000) task; ',
  '[1:0x1]      520 ms: Scavenge 21.0 (23.0) -> 12.5 (23.0) MB, 8.00 / 0.01 ms  (average mu = 0.990, current mu = 0.990) task; ',
  '[1:0x1]      600 ms: Mark-Compact 40.0 (60.0) -> 20.0 (40.0) MB, 3.00 / 0.06 ms  (+ 2.7 ms in 22 steps since start of marking) finalize incremental marking via task; GC in old space requested',
  '[1:0x1]      650 ms: Scavenge 31.0 (41.0) -> 21.0 (41.0) MB, 4.00 / 0.01 ms  (average mu = 0.995, current mu = 0.997) task; ',
  '[1:0x1]      700 ms: Scavenge 32.0 (41.0) -> 23.0 (41.0) MB, 6.00 / 0.01 ms  (average mu = 0.995, current mu = 0.997) task; ',
  '[1:0x1]      750 ms: Scavenge (interleaved) 33.0 (41.0) -> 24.0 (41.0) MB, 7.00 / 0.01 ms  (average mu = 0.995, current mu = 0.997) task; ',
].join('\n');

describe('bench/http-load', () => {
  afterEach(() => vi.restoreAllMocks());

  it('summarises the scavenges after the first third, restarting the promotion count after a full GC', () => {
    const s = summarizeGcTrace(TRACE);
    expect(s.scavenges).toBe(6);
    expect(s.fullGcs).toBe(1);
    // Scavenges 3–6 (the first third, 2 of 6, is start-up): durations 8, 4, 6, 7 → median 7.
    expect(s.medianScavengeMs).toBe(7);
    // Their promotions: 12.5 − 10 = 2.5; none right after the full GC; 23 − 21 = 2; 24 − 23 = 1.
    expect(s.meanPromotedMb).toBeCloseTo(5.5 / 3, 10);
  });

  it('reports nothing measured for a log without GC lines', () => {
    const s = summarizeGcTrace('{"level":"info","msg":"ready"}\n');
    expect(s).toMatchObject({ scavenges: 0, fullGcs: 0 });
    expect(s.medianScavengeMs).toBeNaN();
    expect(s.meanPromotedMb).toBeNaN();
  });

  it('prints its usage for --help and refuses bad flags and values before starting anything', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['--help'])).toBe(0);
    expect(out).toHaveBeenCalledWith(USAGE);
    expect(await main(['--second', '3'])).toBe(2);
    expect(await main(['--seconds', '0'])).toBe(2);
    expect(await main(['--connections', '1.5'])).toBe(2);
    expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(
      /unknown argument "--second"[\s\S]*--seconds must be > 0/,
    );
  });
});
