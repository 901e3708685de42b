/**
 * CPU accounting from /proc for the benchmarks (Linux): the CPU time a process has used, and how
 * busy the whole host was between two readings. On a shared machine CPU per request moves less than
 * req/s, and the host's busy share tells a saturated host from processes waiting on each other.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU counters (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU time (user + system, all threads) a process has used so far, in ms; NaN when unreadable. */
export function processCpuMs(pid: number | null | undefined): number {
  if (pid === null || pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
  } catch {
    return Number.NaN;
  }
}

/** All CPUs' time so far, in ms: busy (all but idle and iowait; steal counts as busy) and total. */
export interface HostCpu {
  busyMs: number;
  totalMs: number;
}

export function hostCpu(): HostCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = ticks[3]! + ticks[4]!;
  return { busyMs: ((total - idle) * 1000) / USER_HZ, totalMs: (total * 1000) / USER_HZ };
}

/** The share of all CPUs' time that was busy between two readings (0–1). */
export function busyShare(from: HostCpu, to: HostCpu): number {
  const total = to.totalMs - from.totalMs;
  return total > 0 ? (to.busyMs - from.busyMs) / total : Number.NaN;
}
