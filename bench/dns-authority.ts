/**
 * A small authoritative DNS server for tests (test/dns) and benchmarks (bench/dns.ts): UDP and TCP on 127.0.0.1 (port 0),
 * answering from a static zone with dns-packet. Names under `truncate` are answered over UDP with TC
 * set (and fully over TCP); `silent` makes it swallow every query (for timeout tests). Counts queries.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export interface ZoneRecord {
  type: 'A' | 'AAAA' | 'TXT' | 'CNAME';
  data: string;
  ttl?: number;
}

export interface Authority {
  port: number;
  address: string;
  queries: { udp: number; tcp: number };
  silent: boolean;
  close(): Promise<void>;
}

export async function startAuthority(
  zone: Record<string, ZoneRecord[]>,
  options: { truncate?: string[]; silent?: boolean } = {},
): Promise<Authority> {
  const truncate = new Set(options.truncate ?? []);
  const answer = (msg: Buffer, via: 'udp' | 'tcp'): Buffer | null => {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    const question = q.questions?.[0];
    if (question === undefined) return null;
    const name = question.name.toLowerCase();
    const records = zone[name];
    const base = {
      type: 'response' as const,
      id: q.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED,
      questions: q.questions ?? [],
    };
    if (records === undefined) {
      return dnsPacket.encode({
        ...base,
        flags: base.flags | 3,
        authorities: [
          {
            type: 'SOA',
            name: 'test',
            ttl: 30,
            data: {
              mname: 'ns.test',
              rname: 'h.test',
              serial: 1,
              refresh: 60,
              retry: 60,
              expire: 60,
              minimum: 5,
            },
          },
        ],
      });
    }
    if (via === 'udp' && truncate.has(name))
      return dnsPacket.encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE });
    const answers = records
      .filter((r) => r.type === question.type || r.type === 'CNAME')
      .map((r) => ({
        type: r.type,
        name: question.name,
        ttl: r.ttl ?? 300,
        data: r.type === 'TXT' ? [r.data] : r.data,
      })) as dnsPacket.Answer[];
    return dnsPacket.encode({ ...base, answers });
  };

  const state = { silent: options.silent ?? false };
  const queries = { udp: 0, tcp: 0 };
  const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    queries.udp++;
    if (state.silent) return;
    const out = answer(msg, 'udp');
    if (out !== null) udp.send(out, rinfo.port, rinfo.address);
  };
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        queries.tcp++;
        if (state.silent) continue;
        const out = answer(msg, 'tcp');
        if (out === null) continue;
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        s.write(framed);
      }
    });
  });
  // UDP takes an ephemeral port and TCP the same number; another process may already hold that TCP
  // port (EADDRINUSE), so try again with a fresh UDP socket and port.
  let udp!: dgram.Socket;
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    udp = dgram.createSocket('udp4');
    udp.on('message', onMessage);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    port = udp.address().port;
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      tcp.once('error', resolve);
      tcp.listen(port, '127.0.0.1', () => {
        tcp.removeListener('error', resolve);
        resolve(null);
      });
    });
    if (err === null) break;
    await new Promise<void>((r) => udp.close(() => r()));
    if (err.code !== 'EADDRINUSE' || attempt >= 20) throw err;
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    get silent() {
      return state.silent;
    },
    set silent(v: boolean) {
      state.silent = v;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]);
    },
  };
}

/**
 * Runs the authority in its own process (so a benchmark's direct queries cross a process boundary
 * just like queries through the gateway do): `node dist/bench/dns-authority.js '<zone json>'`.
 * Prints `{"port":N}` when ready; each stdin line "count" prints `{"udp":N,"tcp":N}`.
 */
export async function spawnAuthority(zone: Record<string, ZoneRecord[]>): Promise<{
  port: number;
  address: string;
  counts(): Promise<{ udp: number; tcp: number }>;
  close(): Promise<void>;
}> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify(zone)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: ((l: string) => void)[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    partial += c;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.shift()?.(line);
    }
  });
  const next = () => new Promise<string>((r) => lines.push(r));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) =>
      reject(new Error(`dns-authority exited (${code}) before it was ready`)),
    ),
  );
  exited.catch(() => {});
  const ready = JSON.parse(await Promise.race([next(), exited])) as { port: number };
  return {
    port: ready.port,
    address: `127.0.0.1:${ready.port}`,
    counts: async () => {
      const line = next();
      child.stdin!.write('count\n');
      return JSON.parse(await line);
    },
    close: () =>
      new Promise<void>((r) => {
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}

const { pathToFileURL } = await import('node:url');
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const a = await startAuthority(JSON.parse(process.argv[2] ?? '{}'));
  process.stdout.write(`${JSON.stringify({ port: a.port })}\n`);
  let buf = '';
  process.stdin.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      buf = buf.slice(nl + 1);
      process.stdout.write(`${JSON.stringify(a.queries)}\n`);
    }
  });
  process.on('SIGTERM', () => void a.close().then(() => process.exit(0)));
}
