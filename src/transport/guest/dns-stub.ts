/**
 * Guest-side DNS stub on 127.0.0.1:53 (UDP and TCP). Every query is relayed, unchanged, to the
 * host's DNS port (5007) over the vsock transport with RFC 7766 framing (2-byte length + message);
 * the host decides and answers (a blocked name gets NXDOMAIN there, never here). UDP queries share a
 * small pool of persistent host connections, one query in flight per connection; a TCP client gets
 * its own host connection and its bytes are relayed as-is (the framing is the same).
 *
 * Owns: the stub sockets, the pool, bounds. Must not: decide, cache or synthesize answers — except
 * SERVFAIL when the host cannot be reached or does not answer in time (fail closed, and at once).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { frame, FrameReader } from '../dns/framing.js';
import { connectVsock, type VsockEndpoint } from '../vsock.js';
import { startForwarder } from './forwarder.js';

/** Largest UDP query relayed (bigger ones are dropped: no real resolver sends them). */
export const MAX_STUB_QUERY_BYTES = 4096;
/** UDP queries waiting for the host at once; more are dropped. */
export const MAX_STUB_INFLIGHT = 256;
/** Idle host connections kept for reuse. */
export const MAX_STUB_POOL = 8;
/** A query the host has not answered in this long is dropped (the client retries). */
export const STUB_QUERY_TIMEOUT_MS = 5_000;
export const MAX_STUB_TCP_CONNECTIONS = 128;

/**
 * Every host connection opens with a `\0META` preamble, even an empty one: a DNS frame of a message
 * under 256 bytes also starts with a 0 byte, and one of exactly 77 bytes starts with "\0M", so
 * without it the host could not tell framing from preamble.
 */
const STUB_META = {};

/**
 * A SERVFAIL answer to `query` built from its own bytes (header + first question), so a client
 * whose query could not reach the host fails at once instead of waiting out its timeout. Pure;
 * returns null for bytes that are not a parseable single-question query (those are just dropped).
 */
export function servfailFor(query: Buffer): Buffer | null {
  if (query.length < 12 || (query[2]! & 0x80) !== 0 || query.readUInt16BE(4) !== 1) return null;
  let off = 12;
  for (let labels = 0; labels <= 127; labels++) {
    if (off >= query.length) return null;
    const len = query[off]!;
    if (len === 0) {
      off += 1 + 4; // root label, then QTYPE and QCLASS
      if (off > query.length) return null;
      const out = Buffer.from(query.subarray(0, off));
      out[2] = 0x80 | (query[2]! & 0x79); // QR=1, keep opcode and RD, clear AA/TC
      out[3] = 0x80 | 2; // RA=1, RCODE=SERVFAIL
      out.writeUInt16BE(0, 6); // ANCOUNT
      out.writeUInt16BE(0, 8); // NSCOUNT
      out.writeUInt16BE(0, 10); // ARCOUNT
      return out;
    }
    if (len > 63) return null; // compression pointers do not belong in a query's question
    off += 1 + len;
  }
  return null;
}

export interface DnsStubOptions {
  host: string;
  /** 53 in a guest; 0 in tests. UDP and TCP bind the same port. */
  port: number;
  upstream: VsockEndpoint;
  onError?: (what: string, err: unknown) => void;
}

export interface DnsStubHandle {
  udpAddress: string;
  tcpAddress: string;
  port: number;
  close(): Promise<void>;
}

interface Conn {
  socket: net.Socket;
  reader: FrameReader;
  waiter: ((msg: Buffer | null) => void) | null;
}

class HostPool {
  private idle: Conn[] = [];
  private all = new Set<Conn>();
  constructor(private readonly upstream: VsockEndpoint) {}

  private async open(): Promise<Conn> {
    const socket = await connectVsock(this.upstream, STUB_META);
    socket.setNoDelay(true);
    const conn: Conn = { socket, reader: new FrameReader(), waiter: null };
    this.all.add(conn);
    const drop = () => {
      this.all.delete(conn);
      this.idle = this.idle.filter((c) => c !== conn);
      const w = conn.waiter;
      conn.waiter = null;
      w?.(null);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      const r = conn.reader.push(chunk);
      for (const msg of r.frames) {
        const w = conn.waiter;
        conn.waiter = null;
        w?.(msg);
      }
      if (!r.ok) drop();
    });
    socket.on('error', drop);
    socket.on('close', drop);
    return conn;
  }

  /** One query, one answer (or null when the host connection failed or timed out). */
  async query(msg: Buffer, retry = true): Promise<Buffer | null> {
    const reused = this.idle.pop();
    const conn = reused ?? (await this.open());
    const answer = await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => {
        conn.waiter = null;
        conn.socket.destroy();
        resolve(null);
      }, STUB_QUERY_TIMEOUT_MS);
      conn.waiter = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      conn.socket.write(frame(msg));
    });
    if (answer === null) {
      // A reused connection may have been closed by the host's idle timer just as we wrote: retry once fresh.
      return reused !== undefined && retry ? this.query(msg, false) : null;
    }
    if (this.all.has(conn) && this.idle.length < MAX_STUB_POOL) this.idle.push(conn);
    else conn.socket.destroy();
    return answer;
  }

  close(): void {
    for (const c of this.all) c.socket.destroy();
    this.all.clear();
    this.idle = [];
  }
}

export async function startDnsStub(opts: DnsStubOptions): Promise<DnsStubHandle> {
  const pool = new HostPool(opts.upstream);
  let inflight = 0;
  const udpSocket = () => {
    const udp = dgram.createSocket({ type: opts.host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('error', (err) => opts.onError?.('dns udp', err));
    udp.on('message', (msg, rinfo) => {
      if (msg.length < 12 || msg.length > MAX_STUB_QUERY_BYTES || inflight >= MAX_STUB_INFLIGHT)
        return;
      inflight++;
      pool
        .query(msg)
        .then(
          (answer) => {
            const reply = answer ?? servfailFor(msg);
            if (reply !== null) udp.send(reply, rinfo.port, rinfo.address);
          },
          (err) => {
            opts.onError?.('dns host connection', err);
            const reply = servfailFor(msg); // fail closed, and fast: the host path is down
            if (reply !== null) udp.send(reply, rinfo.port, rinfo.address);
          },
        )
        .finally(() => inflight--);
    });
    return udp;
  };
  // UDP and TCP share one port number. With port 0 the number UDP got may be taken for TCP by
  // someone else; then both are bound again on a new number (a few tries).
  for (let attempt = 1; ; attempt++) {
    const udp = udpSocket();
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(opts.port, opts.host, () => resolve());
    });
    const port = udp.address().port;
    // A TCP client's bytes are relayed as they are (the framing is the same on both sides): the
    // forwarder, with the empty preamble every host connection starts with.
    let tcp: Awaited<ReturnType<typeof startForwarder>>;
    try {
      tcp = await startForwarder({
        host: opts.host,
        port,
        upstream: opts.upstream,
        identify: () => STUB_META,
        idleMs: STUB_QUERY_TIMEOUT_MS * 2,
        maxConnections: MAX_STUB_TCP_CONNECTIONS,
        label: 'dns tcp',
        ...(opts.onError === undefined ? {} : { onError: opts.onError }),
      });
    } catch (err) {
      await new Promise<void>((r) => udp.close(() => r()));
      if (opts.port !== 0 || attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE')
        throw err;
      continue;
    }
    return {
      udpAddress: `${opts.host}:${port}`,
      tcpAddress: `${opts.host}:${port}`,
      port,
      close: async () => {
        pool.close();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), tcp.close()]);
      },
    };
  }
}
