/**
 * Starts the real built gateway for the MCP benches with its log going to a FILE, not a pipe into
 * the bench process: the bench process is also the measured MCP client, and parsing one log line
 * per decision on the client's event loop would be measured as gateway latency. The gateway still
 * writes every log line (the cost stays on its side). Owns the process, the control API calls and
 * session.db reads; measures and asserts nothing.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { MAIN_JS } from './guest-netns.js';

export const READY_TIMEOUT_MS = 30_000;

/** Extra node flags for the gateway process only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"). */
const nodeArgs = (): string[] =>
  (process.env.CELGATE_BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');

export interface McpBenchGateway {
  udsBase: string;
  /** The gateway process id (for CPU accounting from /proc). */
  pid: number;
  sessionDb: string;
  logFile: string;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }>;
  /** Rows of `mcp_calls` naming `ruleId` with decision `block`. */
  blockedRows(ruleId: string): number;
  /** Rows of `mcp_calls` for `tool` on `server` in `direction` with decision `allow`. */
  allowedRows(server: string, tool: string, direction: 'request' | 'response'): number;
  /** Log lines (JSON) so far. */
  logs(): any[];
  stop(): Promise<void>;
}

export async function startMcpBenchGateway(
  work: string,
  mcp: Record<string, unknown>,
): Promise<McpBenchGateway> {
  const udsBase = join(work, 'vsock');
  const configFile = join(work, 'gateway.yaml');
  writeFileSync(
    configFile,
    stringify({
      data_dir: work,
      watch_rules: false,
      vsock: {
        mode: 'uds',
        uds_base: udsBase,
        ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
      },
      // The explicit HTTP proxy defaults to 127.0.0.1:8080; bench gateways may run side by side.
      http: { proxy: '127.0.0.1:0' },
      mcp,
    }),
  );
  const logFile = join(work, 'gateway.log');
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeArgs(), MAIN_JS, 'start', '--config', configFile], {
    stdio: ['ignore', out, out],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const logs = (): any[] =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      });
  let ready: any;
  for (const started = Date.now(); ready === undefined;) {
    if (child.exitCode !== null)
      throw new Error(`gateway exited before ready: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    if (Date.now() - started > READY_TIMEOUT_MS) {
      child.kill('SIGKILL');
      throw new Error('gateway not ready in time');
    }
    await new Promise((r) => setTimeout(r, 50));
    ready = logs().find((l) => l.msg === 'ready');
  }
  const controlSocket: string = ready.control_socket;
  const sessionDb = join(ready.session_dir, 'session.db');
  return {
    udsBase,
    pid: child.pid!,
    sessionDb,
    logFile,
    logs,
    api: (method, path, body) =>
      new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          {
            socketPath: controlSocket,
            method,
            path,
            headers: payload ? { 'content-type': 'application/json' } : {},
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      }),
    blockedRows: (ruleId) => {
      const db = new Database(sessionDb, { readonly: true, fileMustExist: true });
      try {
        return (
          db
            .prepare("SELECT count(*) AS n FROM mcp_calls WHERE rule_id = ? AND decision = 'block'")
            .get(ruleId) as { n: number }
        ).n;
      } finally {
        db.close();
      }
    },
    allowedRows: (server, tool, direction) => {
      const db = new Database(sessionDb, { readonly: true, fileMustExist: true });
      try {
        return (
          db
            .prepare(
              "SELECT count(*) AS n FROM mcp_calls WHERE server_id = ? AND tool_name = ? AND direction = ? AND decision = 'allow'",
            )
            .get(server, tool, direction) as { n: number }
        ).n;
      } finally {
        db.close();
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
