/**
 * Guest-side TCP forwarder: iptables REDIRECTs the guest's TCP 443 and 80 here; each accepted
 * connection is relayed byte for byte to the host's HTTP port (5002) over the vsock transport.
 * The host sniffs TLS vs plain HTTP and reads SNI / Host itself, so the original destination
 * address is not needed. A `\0META` preamble is sent when the bridge knows the client process.
 *
 * Owns: accepting, the relay, backpressure and connection bounds. Must not: parse, decide or log
 * request contents.
 */
import net from 'node:net';
import { listenOn, tcpAddress, trackSockets } from '../listen.js';
import { connectVsock, type GuestMeta, type VsockEndpoint } from '../vsock.js';

/** Concurrent relayed connections; more are refused (closed) until some finish. */
export const MAX_FORWARD_CONNECTIONS = 1024;
/** A relayed connection with no traffic in either direction for this long is closed. */
export const FORWARD_IDLE_MS = 5 * 60_000;

export interface ForwarderOptions {
  /** Where to listen inside the guest, e.g. 127.0.0.1:15001. Port 0 picks one. */
  host: string;
  port: number;
  /** The host's HTTP vsock port. */
  upstream: VsockEndpoint;
  /** Optional: who is this client? Called per connection; must be cheap. */
  identify?: (socket: net.Socket) => GuestMeta | undefined;
  onError?: (what: string, err: unknown) => void;
  /** Idle timeout per relayed connection (default FORWARD_IDLE_MS). */
  idleMs?: number;
  /** Concurrent relayed connections (default MAX_FORWARD_CONNECTIONS). */
  maxConnections?: number;
  /** Names this listener in onError reports (default "forwarder"). */
  label?: string;
}

export interface ForwarderHandle {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Pipes a and b both ways; closing or failing either side closes the other. */
export function splice(a: net.Socket, b: net.Socket, idleMs: number): void {
  const closeBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', closeBoth);
  b.on('error', closeBoth);
  a.on('close', () => b.end());
  b.on('close', () => a.end());
  a.setTimeout(idleMs, closeBoth);
  b.setTimeout(idleMs, closeBoth);
  a.pipe(b);
  b.pipe(a);
}

export async function startForwarder(opts: ForwarderOptions): Promise<ForwarderHandle> {
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (client) => {
    client.on('error', () => client.destroy());
    let meta: GuestMeta | undefined;
    try {
      meta = opts.identify?.(client);
    } catch (err) {
      opts.onError?.('identify', err);
    }
    connectVsock(opts.upstream, meta).then(
      (up) => {
        if (client.destroyed) {
          up.destroy();
          return;
        }
        up.setNoDelay(true);
        tracked.add(up);
        splice(client, up, opts.idleMs ?? FORWARD_IDLE_MS);
        client.resume();
      },
      (err) => {
        opts.onError?.(`${opts.label ?? 'forwarder'}: connect host port`, err);
        client.destroy(); // fail closed: no host path, no traffic
      },
    );
  });
  server.maxConnections = opts.maxConnections ?? MAX_FORWARD_CONNECTIONS;
  const tracked = trackSockets(server);
  server.on('error', (err) => opts.onError?.(opts.label ?? 'forwarder', err));
  await listenOn(server, opts.port, opts.host);
  return {
    address: tcpAddress(server),
    port: (server.address() as net.AddressInfo).port,
    close: tracked.close,
  };
}
