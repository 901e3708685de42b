/**
 * The guest end of host→guest connections. In a Firecracker / Cloud Hypervisor VM the VMM owns the
 * hybrid-vsock base socket `<base>` and turns `CONNECT P\n` into a vsock connection to guest port P.
 * In a network-namespace guest there is no VMM, so the bridge plays that part: it listens on
 * `<base>` (a Unix socket, reachable from the host because the filesystem is shared), reads the
 * `CONNECT P\n` line (sans-io `parseConnectRequest`), answers `OK <n>\n` and hands the stream to
 * the service registered for P. In tcp mode each guest port is a plain TCP listener instead.
 *
 * Owns: that listener and the CONNECT line. Must not: interpret the service's bytes.
 */
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { listenOn, removeStaleSocket, tcpAddress, trackSockets } from '../listen.js';

/** Longest `CONNECT <port>\n` line accepted. */
export const MAX_CONNECT_LINE_BYTES = 32;
export const CONNECT_LINE_TIMEOUT_MS = 5_000;

export type ConnectRequest =
  { status: 'need_more' } | { status: 'ok'; port: number; consumed: number };

/** Parses `CONNECT <port>\n` at the start of `buf`. Pure; throws E_PARSE / E_LIMIT. */
export function parseConnectRequest(buf: Buffer): ConnectRequest {
  const nl = buf.indexOf(0x0a);
  if (nl < 0 || nl >= MAX_CONNECT_LINE_BYTES) {
    if (buf.length >= MAX_CONNECT_LINE_BYTES)
      throw new CelgateError('E_LIMIT', 'hybrid-vsock CONNECT line too long');
    return { status: 'need_more' };
  }
  const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
  const m = /^CONNECT (\d{1,10})$/.exec(line);
  if (m === null)
    throw new CelgateError('E_PARSE', `expected "CONNECT <port>", got ${JSON.stringify(line)}`);
  const port = Number(m[1]);
  if (port > 0xffffffff) throw new CelgateError('E_PARSE', `vsock port ${port} out of range`);
  return { status: 'ok', port, consumed: nl + 1 };
}

export type GuestService = (socket: net.Socket) => void;

export interface GuestPortListener {
  address: string;
  close(): Promise<void>;
}

function trackedServer(onSocket: (s: net.Socket) => void): {
  server: net.Server;
  closeAll(): Promise<void>;
} {
  const server = net.createServer((s) => {
    s.on('error', () => s.destroy());
    onSocket(s);
  });
  const tracked = trackSockets(server);
  server.on('error', () => {});
  return { server, closeAll: tracked.close };
}

/** Listens on the hybrid-vsock base socket and dispatches `CONNECT P` to `services[P]`. */
export async function listenHybridBase(
  path: string,
  services: ReadonlyMap<number, GuestService>,
): Promise<GuestPortListener> {
  let nextLocal = 1024;
  const { server, closeAll } = trackedServer((socket) => {
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), CONNECT_LINE_TIMEOUT_MS);
    timer.unref();
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let r: ConnectRequest;
      try {
        r = parseConnectRequest(buf);
      } catch {
        clearTimeout(timer);
        socket.destroy();
        return;
      }
      if (r.status === 'need_more') return;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      const service = services.get(r.port);
      if (service === undefined) {
        socket.destroy(); // the VMM closes the connection when nothing listens on the guest port
        return;
      }
      socket.write(`OK ${nextLocal++}\n`);
      if (nextLocal > 65535) nextLocal = 1024;
      socket.pause();
      if (r.consumed < buf.length) socket.unshift(buf.subarray(r.consumed));
      service(socket);
      socket.resume();
    };
    socket.on('data', onData);
  });
  removeStaleSocket(path);
  await listenOn(server, path);
  return { address: path, close: closeAll };
}

/** tcp mode: one guest port as a TCP listener (host:port; port 0 picks one). */
export async function listenGuestTcp(
  host: string,
  port: number,
  service: GuestService,
): Promise<GuestPortListener> {
  const { server, closeAll } = trackedServer(service);
  await listenOn(server, port, host);
  return { address: tcpAddress(server), close: closeAll };
}
