/**
 * The DNS service's sockets: the guest's vsock port (5007 by default; RFC 7766 framing, several
 * queries per connection answered in order, optional `\0META` preamble) and, when configured, plain
 * UDP + TCP listeners on one address for hosts that point a resolver at celgate directly. All bytes
 * go to one `DnsResolver`; this module only moves messages and bounds connections. It does not parse
 * DNS beyond framing and does not decide.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { EventOrigin } from '../../events/index.js';
import { CelgateError } from '../../errors.js';
import { listenOn, trackSockets } from '../listen.js';
import type { GuestMeta, VsockEndpoint } from '../vsock.js';
import { AnswerCache, DEFAULT_CACHE_ENTRIES } from './cache.js';
import { FrameReader, MAX_FRAME_BYTES, frame } from './framing.js';
import {
  FRAME_DEADLINE_MS,
  MAX_CACHE_TTL_S,
  MAX_PIPELINED,
  MAX_STREAM_CONNECTIONS,
  STREAM_IDLE_MS,
} from './limits.js';
import { DnsResolver, type DnsDeps, type DnsStats, type RequestContext } from './resolver.js';
import { UpstreamForwarder, parseUpstream } from './upstream.js';
import { listenDnsVsock } from './vsock-listener.js';

/** The documented default upstreams (Cloudflare and Quad9), used when `upstreams` is not set. */
import {
  DEFAULT_STATIC_TTL_S,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_UPSTREAMS,
  normaliseStatic,
  parseListen,
} from './settings.js';

export {
  DEFAULT_STATIC_TTL_S,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_UPSTREAMS,
  normaliseStatic,
  parseListen,
};
/** Tries to find one free port number for both UDP and TCP when `listen` asks for port 0. */
const LISTEN_ATTEMPTS = 8;

export interface DnsServiceOptions {
  origin: EventOrigin;
  /** The guest's vsock DNS port, or null to disable it. */
  vsock: VsockEndpoint | null;
  /** "HOST:PORT" for plain UDP + TCP listeners, or null (the default). Port 0 picks one (UDP's; TCP
   * then binds the same number). */
  listen: string | null;
  upstreams?: readonly string[];
  /** name → IPv4/IPv6 addresses answered locally (after policy allowed the name). */
  static?: Readonly<Record<string, readonly string[]>>;
  static_ttl_s?: number;
  /** How long to wait for one upstream before trying the next. */
  timeout_ms?: number;
  cache_entries?: number;
  cache_max_ttl_s?: number;
  /** Stream frames must complete within this long (default FRAME_DEADLINE_MS; tests shorten it). */
  frame_deadline_ms?: number;
}

export interface DnsService {
  /** e.g. { dns_vsock: "127.0.0.1:5007", dns_udp: "127.0.0.1:5353", dns_tcp: "127.0.0.1:5353" } */
  addresses: Record<string, string>;
  resolver: DnsResolver;
  /** Resolver counters (queries, verdicts, cache hits, malformed messages by reason) and cache size. */
  stats(): DnsStats & { cache: { entries: number; bytes: number } };
  close(): Promise<void>;
}

export async function startDnsService(
  options: DnsServiceOptions,
  deps: DnsDeps,
): Promise<DnsService> {
  const upstreams = (options.upstreams ?? DEFAULT_UPSTREAMS).map(parseUpstream);
  const cache = new AnswerCache(
    options.cache_entries ?? DEFAULT_CACHE_ENTRIES,
    options.cache_max_ttl_s ?? MAX_CACHE_TTL_S,
  );
  const resolver = new DnsResolver(
    {
      origin: options.origin,
      staticNames: normaliseStatic(options.static ?? {}),
      staticTtlS: options.static_ttl_s ?? DEFAULT_STATIC_TTL_S,
      cache,
      forwarder: new UpstreamForwarder(upstreams, options.timeout_ms ?? DEFAULT_TIMEOUT_MS),
    },
    deps,
  );
  const addresses: Record<string, string> = {};
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    await Promise.all(closers.splice(0).map((c) => c().catch(() => {})));
  };
  try {
    if (options.vsock !== null) {
      const listener = await listenDnsVsock(
        { ...options.vsock, maxConnections: MAX_STREAM_CONNECTIONS },
        (c) =>
          serveStream(c.socket, c.head, c.meta, 'vsock', resolver, deps, options.frame_deadline_ms),
        (reason) => deps.log.warn({ transport: 'vsock', reason }, 'dns: vsock connection refused'),
      );
      addresses.dns_vsock = listener.address;
      closers.push(() => listener.close());
    }
    if (options.listen !== null) {
      const { host, port } = parseListen(options.listen);
      if (port !== 0 && upstreams.some((u) => u.host === host && u.port === port)) {
        throw new CelgateError(
          'E_CONFIG',
          `dns.upstreams includes dns.listen (${options.listen}): celgate would forward to itself`,
        );
      }
      if (!/^(127\.|::1$)/.test(host)) {
        deps.log.warn(
          { listen: options.listen },
          'dns: listening beyond loopback; anyone who can reach this address can query through celgate',
        );
      }
      // UDP and TCP share one port number. With port 0 the UDP port is picked first, and TCP may
      // find that number taken: then both are retried on a fresh pick.
      for (let attempt = 1; ; attempt++) {
        const udp = await listenUdp(host, port, resolver, deps);
        try {
          const tcp = await listenTcp(host, udp.port, resolver, deps, options.frame_deadline_ms);
          addresses.dns_udp = udp.address;
          addresses.dns_tcp = tcp.address;
          closers.push(udp.close, tcp.close);
          break;
        } catch (err) {
          await udp.close();
          if (
            port !== 0 ||
            attempt >= LISTEN_ATTEMPTS ||
            (err as NodeJS.ErrnoException).code !== 'EADDRINUSE'
          )
            throw err;
        }
      }
    }
  } catch (err) {
    await closeAll();
    throw err instanceof CelgateError
      ? err
      : new CelgateError('E_CONFIG', `dns: could not listen: ${(err as Error).message}`, {
          cause: err,
        });
  }
  deps.log.info({ addresses, upstreams: upstreams.length }, 'dns: listening');
  const stats = () => ({
    ...resolver.stats,
    malformed: { ...resolver.stats.malformed },
    cache: { entries: cache.size, bytes: cache.totalBytes },
  });
  return { addresses, resolver, stats, close: closeAll };
}

const hostPort = (a: { address: string; port: number; family: string }) =>
  a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;

async function listenUdp(host: string, port: number, resolver: DnsResolver, deps: DnsDeps) {
  const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  socket.on('message', (msg, rinfo) => {
    resolver.handle(msg, { transport: 'udp' }).then(
      (answer) => {
        if (answer !== null) socket.send(answer, rinfo.port, rinfo.address, () => {});
      },
      (err: Error) => deps.log.warn({ err: err.message }, 'dns: udp query failed'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
  socket.on('error', (err) => deps.log.warn({ err: err.message }, 'dns: udp socket error'));
  const a = socket.address();
  return {
    address: hostPort(a),
    port: a.port,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

async function listenTcp(
  host: string,
  port: number,
  resolver: DnsResolver,
  deps: DnsDeps,
  frameDeadlineMs?: number,
) {
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    serveStream(socket, Buffer.alloc(0), {}, 'tcp', resolver, deps, frameDeadlineMs);
  });
  server.maxConnections = MAX_STREAM_CONNECTIONS;
  const tracked = trackSockets(server);
  await listenOn(server, port, host);
  server.on('error', (err) => deps.log.warn({ err: err.message }, 'dns: tcp listener error'));
  const a = server.address() as net.AddressInfo;
  return {
    address: hostPort(a),
    close: tracked.close,
  };
}

/**
 * One RFC 7766 stream: frames in, answers out in the order the queries arrived (a slow upstream
 * answer holds back the ones behind it). Too many pending queries pause reading; a bad frame or an
 * idle connection closes it.
 */
export function serveStream(
  socket: net.Socket,
  head: Buffer,
  meta: GuestMeta,
  transport: 'tcp' | 'vsock',
  resolver: DnsResolver,
  deps: DnsDeps,
  frameDeadlineMs: number = FRAME_DEADLINE_MS,
): void {
  // Frames up to the RFC limit are read (≤ 64 KiB buffered per connection) so an oversized query
  // gets the same FORMERR as over UDP instead of a silent close.
  const reader = new FrameReader(MAX_FRAME_BYTES);
  const ctx: RequestContext =
    meta.process_name === undefined
      ? { transport }
      : { transport, process_name: meta.process_name };
  const queue: Promise<Buffer | null>[] = [];
  let closed = false;
  let flushing = false;
  let peerEnded = false; // the client half-closed: answer what is buffered, then end
  let broken = false; // a bad frame: answer what came before it, then end
  socket.setTimeout(STREAM_IDLE_MS, () => {
    if (queue.length === 0) socket.destroy();
  });
  socket.on('error', () => {});
  let frameTimer: NodeJS.Timeout | null = null;
  socket.on('close', () => {
    closed = true;
    if (frameTimer !== null) clearTimeout(frameTimer);
  });
  /** Arms the slow-drip guard while a frame is incomplete; disarms it once the frame is whole. */
  const watchPartialFrame = () => {
    if (reader.midFrame && frameTimer === null && !closed) {
      frameTimer = setTimeout(() => {
        deps.log.warn(
          { transport, reason: 'frame_deadline', buffered: reader.buffered },
          `dns: a frame did not complete within ${frameDeadlineMs} ms; closing the connection`,
        );
        socket.destroy();
      }, frameDeadlineMs);
      frameTimer.unref();
    } else if (!reader.midFrame && frameTimer !== null) {
      clearTimeout(frameTimer);
      frameTimer = null;
    }
  };

  /** Takes frames off the reader while fewer than MAX_PIPELINED answers are pending. */
  const pump = () => {
    while (!broken && queue.length < MAX_PIPELINED) {
      const f = reader.next();
      if (f === null) break;
      if (!Buffer.isBuffer(f)) {
        deps.log.warn(
          { transport, reason: f.error },
          'dns: bad stream frame; closing the connection',
        );
        broken = true;
        break;
      }
      queue.push(resolver.handle(f, ctx).catch(() => null));
    }
    watchPartialFrame();
    // Back-pressure both ways: a full pipeline, or answers the client is not reading.
    if (broken || peerEnded || queue.length >= MAX_PIPELINED || socket.writableNeedDrain)
      socket.pause();
    else socket.resume();
  };

  const flush = async () => {
    if (flushing) return;
    flushing = true;
    while (queue.length > 0 && !closed) {
      const answer = await queue[0]!;
      void queue.shift();
      if (answer !== null && !closed) socket.write(frame(answer));
      pump();
    }
    flushing = false;
    if ((broken || peerEnded) && queue.length === 0 && !closed) socket.end();
  };

  const onBytes = (chunk: Buffer) => {
    reader.append(chunk);
    pump();
    void flush();
  };
  socket.on('data', onBytes);
  socket.on('drain', pump);
  socket.on('end', () => {
    peerEnded = true;
    pump();
    void flush();
  });
  if (head.length > 0) onBytes(head);
  else socket.resume();
}
