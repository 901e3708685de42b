/**
 * Runs INSIDE the guest namespace: resolves each name given on the command line with getaddrinfo
 * (Node's dns.lookup, IPv4 only so each lookup is exactly one A query) one after another, timing
 * each, and prints one JSON line: [{name, ms, code, address}]. Never throws; errors are results.
 */
import { lookup } from 'node:dns/promises';

const out: Array<{ name: string; ms: number; code: string; address: string }> = [];
for (const name of process.argv.slice(2)) {
  const t0 = performance.now();
  try {
    const r = await lookup(name, { family: 4 });
    out.push({ name, ms: performance.now() - t0, code: 'OK', address: r.address });
  } catch (err) {
    out.push({
      name,
      ms: performance.now() - t0,
      code: (err as NodeJS.ErrnoException).code ?? 'ERROR',
      address: '',
    });
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`);
