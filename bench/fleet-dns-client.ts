/**
 * The measuring client of bench/fleet.ts's enforcement comparison, in its own process: one UDP
 * socket, one query in flight, blocked lookups sent to each gateway in turn for `seconds` per round
 * at `rate` lookups per second (rounds interleave the gateways, alternating which goes first, so load drift hits both alike; the
 * fixed rate gives both the same offered load). Prints one JSON line: per gateway, the raw
 * round-trip times (ms) and how many answers were NXDOMAIN.
 *
 *   node dist/bench/fleet-dns-client.js '{"ports":[P1,P2],"rounds":R,"seconds":S,"rate":N,"zone":"blocked.bench.test"}'
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface FleetClientReport {
  ms: number[][];
  nxdomain: number[];
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2] ?? '{}') as {
    ports: number[];
    rounds: number;
    seconds: number;
    rate: number;
    zone: string;
  };
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  let waiting: ((m: Buffer) => void) | null = null;
  socket.on('message', (m) => waiting?.(m));
  let id = 0;
  const ask = (name: string, port: number): Promise<{ rcode: number; ms: number }> => {
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
        clearTimeout(timer);
        waiting = null;
        resolve({ rcode: answer[3]! & 0xf, ms: performance.now() - t0 });
      };
      socket.send(msg, port, '127.0.0.1');
    });
  };
  const report: FleetClientReport = { ms: o.ports.map(() => []), nxdomain: o.ports.map(() => 0) };
  let n = 0;
  for (let round = 0; round < o.rounds; round++) {
    // Alternate which gateway goes first, so neither always follows the other.
    const order = o.ports.map((port, g) => [g, port] as const);
    if (round % 2 === 1) order.reverse();
    for (const [g, port] of order) {
      // Warm each turn briefly so the first lookups after a switch do not carry a cold socket.
      for (let i = 0; i < 50; i++) await ask(`warm${n++}.${o.zone}`, port);
      const start = performance.now();
      const total = Math.round(o.seconds * o.rate);
      for (let i = 0; i < total; i++) {
        const due = start + (i * 1000) / o.rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const r = await ask(`q${n++}.${o.zone}`, port);
        report.ms[g]!.push(r.ms);
        if (r.rcode === 3) report.nxdomain[g]!++;
      }
    }
  }
  socket.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
