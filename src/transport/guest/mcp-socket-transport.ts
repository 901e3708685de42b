/**
 * An `@modelcontextprotocol/sdk` client Transport that speaks newline-delimited JSON-RPC straight
 * to the guest bridge's MCP relay socket (default /run/celgate/mcp.sock), so an agent program in
 * the guest can use an SDK `Client` without spawning the stdio shim (one process hop each way
 * less). Like the shim, it starts the connection with a `\0META` preamble naming its process, so
 * celgate records calls under that name.
 *
 * Owns: the Unix socket, line framing (the sans-io NdjsonDecoder, lines bounded by MAX_LINE_BYTES)
 * and JSON parse of replies. Must not: decide, rewrite messages, or retry (the relay and celgate
 * do the rest; a dropped connection surfaces as onclose).
 */
import net from 'node:net';
import { basename } from 'node:path';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { CelgateError } from '../../errors.js';
import { MAX_LINE_BYTES, NdjsonDecoder } from '../mcp/ndjson.js';
import { encodeMetaPreamble } from '../vsock.js';
import { DEFAULT_MCP_SOCKET } from './mcp-shim.js';

export interface McpSocketTransportOptions {
  /** The relay socket (default DEFAULT_MCP_SOCKET). */
  socketPath?: string;
  /** Recorded as process_name for this client's calls; default: this process's script name. */
  processName?: string;
  /** Longest reply line accepted (default MAX_LINE_BYTES, the frame payload bound). */
  maxLineBytes?: number;
}

/** The name this process goes by when none is given (`node agent.js` → "agent.js"). */
function ownProcessName(): string {
  const script = process.argv[1];
  return script === undefined ? basename(process.argv0) : basename(script);
}

export class McpSocketTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private socket: net.Socket | null = null;
  private state: 'new' | 'open' | 'closed' = 'new';
  private readonly decoder: NdjsonDecoder;
  readonly socketPath: string;
  readonly processName: string;

  constructor(opts: McpSocketTransportOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_MCP_SOCKET;
    this.processName = opts.processName ?? ownProcessName();
    this.decoder = new NdjsonDecoder(opts.maxLineBytes ?? MAX_LINE_BYTES);
  }

  /** Connects and sends the preamble; rejects with E_UNAVAILABLE when the relay is not there. */
  start(): Promise<void> {
    if (this.state !== 'new')
      return Promise.reject(new CelgateError('E_INTERNAL', 'transport already started'));
    this.state = 'open';
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socketPath);
      this.socket = s;
      let connected = false;
      s.once('connect', () => {
        connected = true;
        if (this.processName !== '')
          s.write(encodeMetaPreamble({ process_name: this.processName, pid: process.pid }));
        resolve();
      });
      s.on('data', (chunk: Buffer) => this.onBytes(chunk));
      s.on('error', (err) => {
        if (!connected)
          reject(
            new CelgateError(
              'E_UNAVAILABLE',
              `cannot reach the MCP relay at ${this.socketPath}: ${err.message}`,
              { cause: err },
            ),
          );
        else this.onerror?.(err);
      });
      s.on('close', () => this.finish());
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const s = this.socket;
    if (this.state !== 'open' || s === null || !s.writable) {
      return Promise.reject(
        new CelgateError(
          'E_UPSTREAM',
          `the MCP relay connection is ${this.state === 'open' ? 'not writable' : this.state}`,
        ),
      );
    }
    // JSON.stringify never emits a raw newline, so one message is one line.
    s.write(`${JSON.stringify(message)}\n`);
    return Promise.resolve();
  }

  async close(): Promise<void> {
    const s = this.socket;
    if (s !== null && !s.destroyed) s.end();
    this.finish();
  }

  private onBytes(chunk: Buffer): void {
    const { lines, error } = this.decoder.push(chunk);
    for (const line of lines) {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        this.onerror?.(
          new CelgateError('E_PARSE', `bad JSON-RPC from the MCP relay: ${(err as Error).message}`),
        );
        continue;
      }
      for (const m of Array.isArray(value) ? value : [value]) this.onmessage?.(m as JSONRPCMessage);
    }
    if (error !== null) {
      this.onerror?.(
        new CelgateError(
          error.reason === 'oversize' ? 'E_LIMIT' : 'E_PARSE',
          `MCP relay reply: ${error.message}`,
        ),
      );
      this.socket?.destroy();
    }
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onclose?.();
  }
}
