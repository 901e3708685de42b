/**
 * The measuring client of bench/dns.ts, run in its own process so the timings do not share an event
 * loop with the harness that reads the gateway's log lines. One UDP socket, one query in flight.
 *
 *   node dist/bench/dns-udp-client.js '{"gateway":PORT,"upstream":PORT,"runs":N,"warmup":W}'
 *
 * Phase 1: W warm-up + N blocked lookups (`op<i>.blocked.bench.test`) to the gateway.
 * Phase 2: one priming query for `allowed.bench.test`, then N pairs: gateway (served from its cache)
 * and the upstream directly, interleaved. Prints one JSON line with raw round-trip times (ms), the
 * rcodes seen and how many answers carried the expected address.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface ClientReport {
  blocked_ms: number[];
  blocked_nxdomain: number;
  cached_ms: number[];
  direct_ms: number[];
  allowed_correct: number;
  primed_rcode: number;
}

export const ALLOWED_NAME = 'allowed.bench.test';
export const ALLOWED_ADDRESS = '192.0.2.7';
export const blockedName = (i: number) => `op${i}.blocked.bench.test`;

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as {
    gateway: number;
    upstream: number;
    runs: number;
    warmup: number;
  };
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  let waiting: ((m: Buffer) => void) | null = null;
  socket.on('message', (m) => waiting?.(m));
  let id = 0;
  const ask = (name: string, port: number): Promise<{ answer: Buffer; ms: number }> => {
    id = (id + 1) & 0xffff;
    const msg = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name }],
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name} within 3 s`)), 3000);
      const t0 = performance.now();
      waiting = (answer) => {
        if (answer.readUInt16BE(0) !== msg.readUInt16BE(0)) return;
        const ms = performance.now() - t0;
        clearTimeout(timer);
        waiting = null;
        resolve({ answer, ms });
      };
      socket.send(msg, port, '127.0.0.1');
    });
  };
  const rcode = (b: Buffer) => b[3]! & 0xf;
  const address = (b: Buffer) => {
    const a = dnsPacket.decode(b).answers?.[0] as { data?: unknown } | undefined;
    return a?.data;
  };

  const report: ClientReport = {
    blocked_ms: [],
    blocked_nxdomain: 0,
    cached_ms: [],
    direct_ms: [],
    allowed_correct: 0,
    primed_rcode: -1,
  };
  for (let i = 0; i < opts.warmup; i++) await ask(`warm${i}.blocked.bench.test`, opts.gateway);
  for (let i = 0; i < opts.runs; i++) {
    const { answer, ms } = await ask(blockedName(i), opts.gateway);
    if (rcode(answer) === 3) report.blocked_nxdomain++;
    report.blocked_ms.push(ms);
  }
  report.primed_rcode = rcode((await ask(ALLOWED_NAME, opts.gateway)).answer);
  for (let i = 0; i < opts.warmup; i++) {
    await ask(ALLOWED_NAME, opts.gateway);
    await ask(ALLOWED_NAME, opts.upstream);
  }
  for (let i = 0; i < opts.runs; i++) {
    const viaGateway = await ask(ALLOWED_NAME, opts.gateway);
    const direct = await ask(ALLOWED_NAME, opts.upstream);
    if (
      address(viaGateway.answer) === ALLOWED_ADDRESS &&
      address(direct.answer) === ALLOWED_ADDRESS
    )
      report.allowed_correct++;
    report.cached_ms.push(viaGateway.ms);
    report.direct_ms.push(direct.ms);
  }
  socket.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

const { pathToFileURL } = await import('node:url');
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  await main();
