/**
 * The vsock transport of DESIGN §3: host-side listeners for guest ports in `tcp` (loopback) or `uds`
 * (Firecracker / Cloud Hypervisor hybrid-vsock `<base>_<port>`) mode, the client side used by the
 * guest bridge and tests, the host→guest `CONNECT P\n` / `OK n\n` handshake, and the optional
 * `\0META {json}\n` preamble (parsed sans-io by `parseMetaPreamble`, stripped before protocol code
 * sees the stream).
 *
 * Owns: sockets and the preamble. Must not: parse any protocol after the preamble, decide, or log.
 */
import net from 'node:net';
import { CelgateError } from '../errors.js';
import { listenOn, removeStaleSocket, tcpAddress, trackSockets } from './listen.js';

export type VsockMode = 'tcp' | 'uds';

export interface VsockEndpoint {
  mode: VsockMode;
  /** tcp mode: address to bind or connect to; default 127.0.0.1. */
  host?: string;
  /** The vsock port. tcp mode: the TCP port (0 = ephemeral when listening). */
  port: number;
  /** uds mode: the hybrid-vsock base path; port P listens on `${udsBase}_${P}`. */
  udsBase?: string;
}

export interface GuestMeta {
  process_name?: string;
  pid?: number;
}

export interface GuestConnection {
  /** Paused; read `head` first, then the socket. */
  socket: net.Socket;
  meta: GuestMeta;
  /** Bytes already read after the optional preamble; process them first. May be empty. */
  head: Buffer;
}

/** Largest preamble, including `\0META ` and the newline. */
export const MAX_META_PREAMBLE_BYTES = 4096;
/** How long a new connection may take to send its first bytes / complete its preamble. */
export const PREAMBLE_TIMEOUT_MS = 10_000;
/** Largest `OK n\n` reply to a host→guest CONNECT. */
export const MAX_CONNECT_REPLY_BYTES = 64;
export const CONNECT_TIMEOUT_MS = 10_000;
/** Longest process_name accepted from a preamble. */
export const MAX_PROCESS_NAME_CHARS = 256;

const META_PREFIX = Buffer.from('\0META ', 'latin1');

export type PreambleResult =
  /** The first byte is not `\0`: the connection has no preamble; `buf` is all protocol bytes. */
  | { status: 'none' }
  /** A preamble has started but its newline has not arrived yet. */
  | { status: 'need_more' }
  /** A complete preamble of `consumed` bytes; protocol bytes start at `buf[consumed]`. */
  | { status: 'done'; meta: GuestMeta; consumed: number };

/**
 * Parses the optional `\0META {json}\n` preamble at the start of `buf`. Pure. Throws
 * `CelgateError` E_LIMIT when the preamble exceeds MAX_META_PREAMBLE_BYTES and E_PARSE when it is
 * malformed (bad prefix, invalid JSON, wrong field types).
 */
export function parseMetaPreamble(buf: Buffer): PreambleResult {
  if (buf.length === 0) return { status: 'need_more' };
  if (buf[0] !== 0) return { status: 'none' };
  const prefixLen = Math.min(buf.length, META_PREFIX.length);
  if (!buf.subarray(0, prefixLen).equals(META_PREFIX.subarray(0, prefixLen))) {
    throw new CelgateError(
      'E_PARSE',
      'connection starts with \\0 but not with the "\\0META " preamble',
    );
  }
  const nl = buf.indexOf(0x0a, 0, 'latin1');
  if (nl < 0 || nl >= MAX_META_PREAMBLE_BYTES) {
    if (buf.length >= MAX_META_PREAMBLE_BYTES) {
      throw new CelgateError(
        'E_LIMIT',
        `META preamble longer than ${MAX_META_PREAMBLE_BYTES} bytes`,
        {
          details: { limit: MAX_META_PREAMBLE_BYTES },
        },
      );
    }
    return { status: 'need_more' };
  }
  const text = buf.subarray(META_PREFIX.length, nl).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CelgateError('E_PARSE', 'META preamble is not valid JSON', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CelgateError('E_PARSE', 'META preamble must be a JSON object');
  }
  const o = value as Record<string, unknown>;
  const meta: GuestMeta = {};
  if (o.process_name !== undefined) {
    if (typeof o.process_name !== 'string' || o.process_name.length > MAX_PROCESS_NAME_CHARS) {
      throw new CelgateError(
        'E_PARSE',
        `META process_name must be a string of at most ${MAX_PROCESS_NAME_CHARS} chars`,
      );
    }
    meta.process_name = o.process_name;
  }
  if (o.pid !== undefined) {
    if (typeof o.pid !== 'number' || !Number.isSafeInteger(o.pid) || o.pid < 0) {
      throw new CelgateError('E_PARSE', 'META pid must be a non-negative integer');
    }
    meta.pid = o.pid;
  }
  return { status: 'done', meta, consumed: nl + 1 };
}

/** Encodes the preamble a client sends first. Throws E_LIMIT when it would be too long. */
export function encodeMetaPreamble(meta: GuestMeta): Buffer {
  const out = Buffer.concat([
    META_PREFIX,
    Buffer.from(JSON.stringify(meta), 'utf8'),
    Buffer.from('\n'),
  ]);
  if (out.length > MAX_META_PREAMBLE_BYTES) {
    throw new CelgateError('E_LIMIT', `META preamble longer than ${MAX_META_PREAMBLE_BYTES} bytes`);
  }
  return out;
}

/** The socket path (uds) for a vsock port. */
export function udsPath(udsBase: string, port: number): string {
  return `${udsBase}_${port}`;
}

function requireUdsBase(ep: VsockEndpoint): string {
  if (ep.udsBase === undefined || ep.udsBase === '') {
    throw new CelgateError('E_CONFIG', 'vsock mode "uds" needs udsBase');
  }
  return ep.udsBase;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) {
    throw new CelgateError('E_CONFIG', `invalid vsock port ${String(port)}`);
  }
}

/** Removes a stale Unix socket left by a previous run; refuses to remove anything else. */
/**
 * Reads the optional preamble off a fresh socket, then hands the paused socket over. A connection
 * whose preamble is malformed, oversized or too slow is destroyed; `onReject` says why.
 */
function acceptGuest(
  socket: net.Socket,
  onConnection: (c: GuestConnection) => void,
  onReject?: (err: CelgateError, socket: net.Socket) => void,
): void {
  let buf: Buffer = Buffer.alloc(0);
  const finish = (err: CelgateError | null, c?: GuestConnection) => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('end', onEnd);
    if (err !== null) {
      onReject?.(err, socket);
      socket.destroy();
      return;
    }
    socket.pause();
    onConnection(c!);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let r: PreambleResult;
    try {
      r = parseMetaPreamble(buf);
    } catch (err) {
      finish(err as CelgateError);
      return;
    }
    if (r.status === 'need_more') return;
    if (r.status === 'none') finish(null, { socket, meta: {}, head: buf });
    else finish(null, { socket, meta: r.meta, head: buf.subarray(r.consumed) });
  };
  const onError = (cause: Error) =>
    finish(new CelgateError('E_PARSE', 'connection failed before its first bytes', { cause }));
  const onEnd = () =>
    finish(new CelgateError('E_PARSE', 'connection closed before its first bytes'));
  const timer = setTimeout(
    () =>
      finish(
        new CelgateError('E_TIMEOUT', `no complete first bytes within ${PREAMBLE_TIMEOUT_MS} ms`),
      ),
    PREAMBLE_TIMEOUT_MS,
  );
  timer.unref();
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('end', onEnd);
}

export interface VsockListener {
  /** "127.0.0.1:PORT" (tcp) or the Unix socket path (uds). */
  address: string;
  close(): Promise<void>;
}

/** Listens on a guest port. Each accepted connection is passed, preamble stripped, to `onConnection`. */
export async function listenVsock(
  ep: VsockEndpoint & {
    maxConnections?: number;
    /** Called for connections refused before `onConnection` (bad preamble, timeout). */
    onReject?: (err: CelgateError, socket: net.Socket) => void;
  },
  onConnection: (c: GuestConnection) => void,
): Promise<VsockListener> {
  checkPort(ep.port);
  const server = net.createServer({ pauseOnConnect: false, noDelay: true }, (socket) => {
    socket.on('error', () => {}); // owners attach their own; never let a reset crash the process
    acceptGuest(socket, onConnection, ep.onReject);
  });
  if (ep.maxConnections !== undefined) server.maxConnections = ep.maxConnections;
  const tracked = trackSockets(server);
  let address: string;
  if (ep.mode === 'uds') {
    address = udsPath(requireUdsBase(ep), ep.port);
    removeStaleSocket(address);
    await listenOn(server, address);
  } else {
    await listenOn(server, ep.port, ep.host ?? '127.0.0.1');
    address = tcpAddress(server);
  }
  server.on('error', () => {}); // post-listen errors (EMFILE) must not crash the gateway
  return { address, close: tracked.close };
}

/** Client side (guest bridge, tests): connects to a guest port and writes the preamble when `meta` is given. */
export function connectVsock(ep: VsockEndpoint, meta?: GuestMeta): Promise<net.Socket> {
  checkPort(ep.port);
  const preamble = meta === undefined ? null : encodeMetaPreamble(meta);
  return new Promise((resolve, reject) => {
    const socket =
      ep.mode === 'uds'
        ? net.connect(udsPath(requireUdsBase(ep), ep.port))
        : net.connect({ port: ep.port, host: ep.host ?? '127.0.0.1', noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      if (preamble !== null) socket.write(preamble);
      resolve(socket);
    });
  });
}

export type ConnectReply =
  { status: 'need_more' } | { status: 'ok'; hostPort: number; consumed: number };

/** Parses the VMM's reply to `CONNECT P\n`: `OK <n>\n`. Pure; throws E_PARSE / E_LIMIT. */
export function parseConnectReply(buf: Buffer): ConnectReply {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) {
    if (buf.length >= MAX_CONNECT_REPLY_BYTES)
      throw new CelgateError('E_LIMIT', 'hybrid-vsock CONNECT reply too long');
    return { status: 'need_more' };
  }
  if (nl >= MAX_CONNECT_REPLY_BYTES)
    throw new CelgateError('E_LIMIT', 'hybrid-vsock CONNECT reply too long');
  const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
  const m = /^OK (\d{1,10})$/.exec(line);
  if (m === null)
    throw new CelgateError(
      'E_PARSE',
      `hybrid-vsock CONNECT refused: ${JSON.stringify(line.slice(0, 40))}`,
    );
  return { status: 'ok', hostPort: Number(m[1]), consumed: nl + 1 };
}

/**
 * Host→guest: connects to the hybrid-vsock base socket, asks for guest `port`, and resolves with the
 * socket once the VMM answers `OK n`. Bytes after the reply are unshifted back onto the socket.
 */
export function connectGuestPort(udsBase: string, port: number): Promise<net.Socket> {
  checkPort(port);
  return new Promise((resolve, reject) => {
    const socket = net.connect(udsBase);
    let buf: Buffer = Buffer.alloc(0);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        err instanceof CelgateError
          ? err
          : new CelgateError('E_UPSTREAM', `hybrid-vsock connect to guest port ${port} failed`, {
              cause: err,
            }),
      );
    };
    const timer = setTimeout(
      () => fail(new CelgateError('E_TIMEOUT', `no CONNECT reply within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    timer.unref();
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let r: ConnectReply;
      try {
        r = parseConnectReply(buf);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (r.status === 'need_more') return;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', fail);
      socket.removeListener('end', onEnd);
      socket.pause();
      if (r.consumed < buf.length) socket.unshift(buf.subarray(r.consumed));
      resolve(socket);
    };
    const onEnd = () =>
      fail(new CelgateError('E_UPSTREAM', `hybrid-vsock closed before answering CONNECT ${port}`));
    socket.on('error', fail);
    socket.on('end', onEnd);
    socket.on('data', onData);
    socket.once('connect', () => socket.write(`CONNECT ${port}\n`));
  });
}
