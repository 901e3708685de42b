/**
 * A lean stdio transport to an upstream MCP server child process: spawn, newline-delimited JSON-RPC
 * over stdin/stdout (the NDJSON codec of ndjson.ts), stderr drained line by line, graceful then
 * forced shutdown. Used instead of the SDK's StdioClientTransport because that one validates every
 * inbound message with zod, which costs more than the rest of the gateway's hop (docs/mcp.md
 * §performance). It implements the SDK `Transport` shape; it parses and decides nothing else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { CelgateError } from '../../errors.js';
import { NdjsonDecoder } from './ndjson.js';

/** Largest line an upstream server may send (bigger replies could not be framed to the guest anyway). */
export const MAX_UPSTREAM_LINE_BYTES = 4 * 1024 * 1024;
/** How long close() waits after ending stdin before SIGTERM, and after SIGTERM before SIGKILL. */
export const STOP_GRACE_MS = 1_000;
const STDERR_LINE_MAX = 512;

export interface StdioParams {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  onStderrLine?: (line: string) => void;
}

export class StdioUpstreamTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private child: ChildProcess | null = null;
  private closed = false;

  constructor(private readonly params: StdioParams) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const p = this.params;
      let child: ChildProcess;
      try {
        child = spawn(p.command, p.args, {
          env: p.env,
          ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
          stdio: ['pipe', 'pipe', 'pipe'],
          windowsHide: true,
        });
      } catch (err) {
        reject(
          new CelgateError('E_UPSTREAM', `cannot start ${p.command}: ${(err as Error).message}`, {
            cause: err,
          }),
        );
        return;
      }
      this.child = child;
      const decoder = new NdjsonDecoder(MAX_UPSTREAM_LINE_BYTES);
      child.once('error', (err) => {
        reject(
          new CelgateError('E_UPSTREAM', `cannot start ${p.command}: ${err.message}`, {
            cause: err,
          }),
        );
        this.finish();
      });
      child.once('spawn', () => resolve());
      child.once('close', () => this.finish());
      child.stdin!.on('error', (err) => this.onerror?.(err));
      child.stdout!.on('data', (chunk: Buffer) => {
        const { lines, error } = decoder.push(chunk);
        for (const line of lines) {
          let msg: unknown;
          try {
            msg = JSON.parse(line);
          } catch {
            this.onerror?.(
              new CelgateError(
                'E_PARSE',
                `upstream sent a line that is not JSON: ${line.slice(0, 80)}`,
              ),
            );
            continue;
          }
          if (typeof msg === 'object' && msg !== null && !Array.isArray(msg))
            this.onmessage?.(msg as JSONRPCMessage);
        }
        if (error) {
          this.onerror?.(new CelgateError('E_LIMIT', `upstream stdout: ${error.message}`));
          child.kill('SIGKILL');
        }
      });
      let buf = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        buf = (buf + chunk.toString('utf8')).slice(-4 * STDERR_LINE_MAX);
        let nl: number;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, Math.min(nl, STDERR_LINE_MAX));
          buf = buf.slice(nl + 1);
          if (line.trim() !== '') p.onStderrLine?.(line);
        }
      });
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.closed || !stdin.writable)
      return Promise.reject(new CelgateError('E_UPSTREAM', 'the upstream process is not running'));
    stdin.write(`${JSON.stringify(message)}\n`);
    return Promise.resolve();
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child || this.closed) return;
    const exited = new Promise<void>((r) =>
      child.exitCode !== null || child.signalCode !== null ? r() : child.once('close', () => r()),
    );
    child.stdin?.end();
    const term = setTimeout(() => child.kill('SIGTERM'), STOP_GRACE_MS);
    const kill = setTimeout(() => child.kill('SIGKILL'), 2 * STOP_GRACE_MS);
    term.unref();
    kill.unref();
    await exited;
    clearTimeout(term);
    clearTimeout(kill);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}
