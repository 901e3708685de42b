/**
 * The guest's DNS vsock port (tcp or uds hybrid-vsock mode). It differs from `listenVsock` in one
 * way that matters: an RFC 7766 stream starts with a 2-byte length whose first byte is 0x00 for any
 * message under 256 bytes, which the generic listener would take for the start of a `\0META`
 * preamble and reject. Here a preamble is recognised only when the first six bytes are exactly
 * `\0META `; anything else is DNS framing from the first byte. (The one ambiguous case, a 77-byte
 * message whose id and flags spell "ETA ", is a query no resolver sends: its flags have opcode 8.)
 * Owns: the listening socket and preamble sniffing. Must not parse DNS or decide.
 */
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { listenOn, removeStaleSocket, tcpAddress, trackSockets } from '../listen.js';
import {
  MAX_META_PREAMBLE_BYTES,
  PREAMBLE_TIMEOUT_MS,
  parseMetaPreamble,
  udsPath,
  type GuestMeta,
  type VsockEndpoint,
} from '../vsock.js';

const META_PREFIX = Buffer.from('\0META ', 'latin1');

export interface DnsVsockConnection {
  socket: net.Socket;
  meta: GuestMeta;
  head: Buffer;
}

export async function listenDnsVsock(
  ep: VsockEndpoint & { maxConnections: number },
  onConnection: (c: DnsVsockConnection) => void,
  onReject: (reason: string) => void,
): Promise<{ address: string; close(): Promise<void> }> {
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    sniff(socket, onConnection, onReject);
  });
  server.maxConnections = ep.maxConnections;
  const tracked = trackSockets(server);
  let address: string;
  if (ep.mode === 'uds') {
    if (ep.udsBase === undefined || ep.udsBase === '')
      throw new CelgateError('E_CONFIG', 'vsock mode "uds" needs a uds base path');
    address = udsPath(ep.udsBase, ep.port);
    removeStaleSocket(address);
    await listenOn(server, address);
  } else {
    await listenOn(server, ep.port, ep.host ?? '127.0.0.1');
    address = tcpAddress(server);
  }
  server.on('error', () => {}); // EMFILE and friends after listen must not crash the gateway
  return { address, close: tracked.close };
}

function sniff(
  socket: net.Socket,
  onConnection: (c: DnsVsockConnection) => void,
  onReject: (reason: string) => void,
): void {
  let buf: Buffer = Buffer.alloc(0);
  const done = (err: string | null, c?: DnsVsockConnection) => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    if (err !== null) {
      onReject(err);
      socket.destroy();
      return;
    }
    socket.pause();
    onConnection(c!);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const n = Math.min(buf.length, META_PREFIX.length);
    if (!buf.subarray(0, n).equals(META_PREFIX.subarray(0, n)))
      return done(null, { socket, meta: {}, head: buf });
    if (buf.length < META_PREFIX.length) return;
    try {
      const r = parseMetaPreamble(buf.subarray(0, Math.min(buf.length, MAX_META_PREAMBLE_BYTES)));
      if (r.status === 'done') done(null, { socket, meta: r.meta, head: buf.subarray(r.consumed) });
      else if (r.status === 'none') done(null, { socket, meta: {}, head: buf });
      else if (buf.length >= MAX_META_PREAMBLE_BYTES)
        done(`META preamble longer than ${MAX_META_PREAMBLE_BYTES} bytes`);
    } catch (err) {
      done(err instanceof Error ? err.message : String(err));
    }
  };
  const onEnd = () => {
    if (buf.length > 0) return done('connection closed inside the META preamble');
    clearTimeout(timer);
    socket.destroy(); // connected and left without a byte: nothing to answer
  };
  const timer = setTimeout(
    () => done(`no complete first bytes within ${PREAMBLE_TIMEOUT_MS} ms`),
    PREAMBLE_TIMEOUT_MS,
  );
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
}
