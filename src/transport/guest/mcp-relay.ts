/**
 * Guest-side MCP relay: a Unix socket inside the guest where local MCP clients speak
 * newline-delimited JSON-RPC (what MCP's stdio transport speaks, so a stdio client works through
 * `celgate mcp-shim`). Each local connection becomes one stream on its own host connection to the
 * MCP port (5003), using the frame codec of src/transport/mcp/frame.ts: OPEN (process name), DATA
 * (one JSON-RPC message per frame), CLOSE. A client may start with a `\0META {json}\n` preamble
 * naming its process; the shim sends one.
 *
 * Owns: the socket, line⇄frame conversion, bounds. Must not: parse JSON-RPC, decide or answer.
 */
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { listenOn, removeStaleSocket, trackSockets } from '../listen.js';
import { encodeClose, encodeData, encodeOpen, FrameDecoder, FrameKind } from '../mcp/frame.js';
import { NdjsonDecoder } from '../mcp/ndjson.js';
import { connectVsock, parseMetaPreamble, type VsockEndpoint } from '../vsock.js';

export const MAX_MCP_RELAY_CLIENTS = 64;
/** The stream id each relayed connection uses on its own host connection. */
export const RELAY_STREAM_ID = 1;

export interface McpRelayOptions {
  socketPath: string;
  upstream: VsockEndpoint;
  /** process_name when the client sends no preamble. */
  defaultProcessName: string;
  onError?: (what: string, err: unknown) => void;
}

export interface McpRelayHandle {
  address: string;
  close(): Promise<void>;
}

function relay(client: net.Socket, opts: McpRelayOptions): void {
  let state: 'preamble' | 'connecting' | 'open' = 'preamble';
  let head: Buffer = Buffer.alloc(0);
  let up: net.Socket | null = null;
  const pending: Buffer[] = [];
  const lines = new NdjsonDecoder();
  const frames = new FrameDecoder();
  const fail = (what: string, err: unknown) => {
    opts.onError?.(what, err);
    client.destroy();
    up?.destroy();
  };
  const toHost = (chunk: Buffer) => {
    const r = lines.push(chunk);
    for (const line of r.lines) up!.write(encodeData(RELAY_STREAM_ID, line));
    if (r.error !== null) fail('mcp client line', new CelgateError('E_LIMIT', r.error.message));
  };
  const start = (processName: string, rest: Buffer) => {
    client.pause();
    connectVsock(opts.upstream).then(
      (sock) => {
        if (client.destroyed) {
          sock.destroy(); // the local client left while we were connecting
          return;
        }
        up = sock;
        state = 'open';
        sock.setNoDelay(true);
        sock.on('error', (e) => fail('mcp host connection', e));
        sock.on('close', () => client.end());
        sock.on('data', (chunk: Buffer) => {
          const r = frames.push(chunk);
          for (const f of r.frames) {
            if (f.kind === FrameKind.DATA)
              client.write(Buffer.concat([f.payload, Buffer.from('\n')]));
            else if (f.kind === FrameKind.CLOSE) client.end();
          }
          if (r.error !== null)
            fail('mcp host frames', new CelgateError('E_PARSE', r.error.message));
        });
        sock.write(encodeOpen(RELAY_STREAM_ID, processName));
        if (rest.length > 0) toHost(rest);
        for (const c of pending.splice(0)) toHost(c);
        client.resume();
      },
      (err) => fail('connect host mcp port', err),
    );
  };
  client.on('error', () => up?.destroy());
  client.on('end', () => {
    if (up !== null && !up.destroyed) up.end(encodeClose(RELAY_STREAM_ID, 'client closed'));
  });
  client.on('close', () => up?.end());
  client.on('data', (chunk: Buffer) => {
    if (state === 'open') return toHost(chunk);
    if (state === 'connecting') return pending.push(chunk);
    head = Buffer.concat([head, chunk]);
    let r;
    try {
      r = parseMetaPreamble(head);
    } catch (err) {
      return fail('mcp client preamble', err);
    }
    if (r.status === 'need_more') return;
    const rest = r.status === 'none' ? head : head.subarray(r.consumed);
    const name =
      r.status === 'done' && r.meta.process_name !== undefined
        ? r.meta.process_name
        : opts.defaultProcessName;
    state = 'connecting'; // later chunks queue until the host connection is up
    start(name, rest);
  });
}

export async function startMcpRelay(opts: McpRelayOptions): Promise<McpRelayHandle> {
  const server = net.createServer((client) => relay(client, opts));
  server.maxConnections = MAX_MCP_RELAY_CLIENTS;
  const tracked = trackSockets(server);
  server.on('error', (err) => opts.onError?.('mcp relay', err));
  removeStaleSocket(opts.socketPath);
  await listenOn(server, opts.socketPath);
  return { address: opts.socketPath, close: tracked.close };
}
