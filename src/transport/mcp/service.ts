/**
 * `startMcpService(options, deps)`: starts the upstream MCP servers and listens on the MCP vsock
 * port (5003, framed JSON-RPC) and, optionally, a loopback/Unix NDJSON endpoint. Composition only:
 * it wires listeners to connection handlers and reports closed streams to the logger. No decisions.
 */
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { listenOn, tcpAddress, trackSockets } from '../listen.js';
import { listenVsock, type VsockMode } from '../vsock.js';
import { serveFramed, serveNdjson, type StreamClosed } from './connection.js';
import { McpGateway, type McpGatewayDeps, type McpGatewayOptions } from './gateway.js';

/** Default bound on concurrent guest connections to the MCP port. */
export const DEFAULT_MAX_CONNECTIONS = 256;

export interface McpServiceOptions extends McpGatewayOptions {
  vsock: {
    mode: VsockMode;
    host?: string;
    port: number;
    udsBase?: string;
    maxConnections?: number;
  };
  /** Bound on a frame that started arriving but is not complete (default FRAME_TIMEOUT_MS). */
  frameTimeoutMs?: number;
  /** Optional NDJSON listener: a Unix socket path, or "HOST:PORT" on loopback. */
  ndjson?: string | null;
}

export interface McpServiceDeps extends McpGatewayDeps {
  /** Every stream the gateway closed or saw closed, with its reason. */
  onStreamClosed?: (info: StreamClosed) => void;
}

export interface McpService {
  addresses: Record<string, string>;
  gateway: McpGateway;
  /** Closed-stream counts by reason since start (hostile ones only). */
  rejected: Record<string, number>;
  close(): Promise<void>;
}

export async function startMcpService(
  options: McpServiceOptions,
  deps: McpServiceDeps,
): Promise<McpService> {
  const gateway = new McpGateway(options, deps);
  await gateway.start();
  const rejected: Record<string, number> = {};
  const onClose = (info: StreamClosed) => {
    if (info.hostile) {
      rejected[info.reason] = (rejected[info.reason] ?? 0) + 1;
      deps.log?.('warn', 'mcp stream closed: hostile input', { ...info });
    } else deps.log?.('debug', 'mcp stream closed', { ...info });
    deps.onStreamClosed?.(info);
  };
  const addresses: Record<string, string> = {};
  const closers: (() => Promise<void>)[] = [];
  try {
    const listener = await listenVsock(
      {
        ...options.vsock,
        maxConnections: options.vsock.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
        onReject: (err) =>
          onClose({
            streamId: null,
            reason: 'bad_preamble',
            message: err.message,
            process_name: '',
            hostile: true,
          }),
      },
      (c) =>
        serveFramed(
          gateway,
          c.socket,
          c.meta.process_name ?? '',
          c.head,
          onClose,
          options.frameTimeoutMs,
        ),
    );
    addresses.mcp = listener.address;
    closers.push(() => listener.close());
    if (options.ndjson) {
      const nd = await listenNdjson(options.ndjson, (socket) =>
        serveNdjson(gateway, socket, '', Buffer.alloc(0), onClose, options.frameTimeoutMs),
      );
      addresses.mcp_ndjson = nd.address;
      closers.push(nd.close);
    }
  } catch (err) {
    await Promise.all(closers.map((c) => c()));
    await gateway.close();
    throw new CelgateError('E_CONFIG', `mcp: cannot listen: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    addresses,
    gateway,
    rejected,
    close: async () => {
      await Promise.all(closers.map((c) => c()));
      await gateway.close();
    },
  };
}

async function listenNdjson(
  where: string,
  onSocket: (s: net.Socket) => void,
): Promise<{ address: string; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    onSocket(s);
  });
  server.maxConnections = DEFAULT_MAX_CONNECTIONS;
  const tracked = trackSockets(server);
  const m = /^(127\.0\.0\.1|\[::1\]|localhost):(\d{1,5})$/.exec(where);
  if (m) await listenOn(server, Number(m[2]), m[1] === '[::1]' ? '::1' : m[1]!);
  else if (where.startsWith('/')) await listenOn(server, where);
  else
    throw new Error(
      `ndjson listener "${where}" must be a Unix socket path or a loopback HOST:PORT`,
    );
  server.on('error', () => {});
  return { address: m ? tcpAddress(server) : where, close: tracked.close };
}
