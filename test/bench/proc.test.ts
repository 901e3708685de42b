import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { busyShare, hostCpu, processCpuMs } from '../../bench/proc.js';

describe('bench CPU accounting from /proc', () => {
  it('reads a process CPU time that grows while it works (and NaN for no process)', async () => {
    // A child that spins until it has used 300 ms of CPU, says so, and waits; its title has spaces
    // and a parenthesis, as a command name (the field /proc/PID/stat brackets) may.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `process.title = 'spin (x) y';
         while (process.cpuUsage().user < 300_000);
         process.stdout.write('spun\\n');
         setTimeout(() => {}, 60_000);`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    try {
      await new Promise((r) => child.stdout.once('data', r));
      const used = processCpuMs(child.pid);
      expect(used).toBeGreaterThanOrEqual(250); // ticks of 10 ms, rounded
      expect(used).toBeLessThan(60_000);
    } finally {
      child.kill();
    }
    expect(processCpuMs(null)).toBeNaN();
    expect(processCpuMs(2 ** 22 + 1)).toBeNaN(); // above pid_max's ceiling: no such process
  });

  it('measures the host busy share between two readings', () => {
    const a = hostCpu();
    const e = Date.now() + 100;
    while (Date.now() < e);
    const b = hostCpu();
    expect(b.totalMs).toBeGreaterThan(a.totalMs);
    expect(b.busyMs).toBeGreaterThanOrEqual(a.busyMs);
    const share = busyShare(a, b);
    expect(share).toBeGreaterThan(0);
    expect(share).toBeLessThanOrEqual(1);
    expect(busyShare(a, a)).toBeNaN();
  });
});
