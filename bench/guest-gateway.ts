/**
 * Starts the real built gateway (`node dist/src/cli/main.js start`) for the guest lanes, in uds
 * vsock mode so a namespace guest can reach it, and talks to its admin API over the control socket
 * with a kept-alive agent. Like test/support/gateway.ts, but importable from the built bench
 * (dist/bench only contains src/ and bench/).
 *
 * The gateway's stdout (its JSON log) and stderr go to FILES in the work dir, read on demand: with a
 * pipe, every decision's log line would wake the bench process (which is often the measured client
 * too) in the middle of the measured operations, and on a 2-core machine that competes with the
 * gateway and the guest for CPU. The gateway still writes every line; nothing is parsed until
 * `logs()` is called.
 *
 * Owns: the gateway process, its log lines, admin API calls, reading its session.db. Must not:
 * measure or assert (lanes do).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { MAIN_JS } from './guest-netns.js';
import { controlRequest } from '../src/control/client.js';

export const GATEWAY_READY_TIMEOUT_MS = 20_000;

export interface ApiResponse {
  status: number;
  json: any;
  text: string;
}

export interface BenchGateway {
  udsBase: string;
  sessionDb: string;
  controlSocket: string;
  listeners: Record<string, string>;
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Every JSON log line so far. */
  logs(): any[];
  stderr(): string;
  /** Rows of `table` whose rule_id is `ruleId` (opens session.db read-only each time). */
  ledgerRows(
    table: string,
    ruleId: string,
  ): Array<{ event_id: string; rule_id: string; decision: string }>;
  stop(): Promise<void>;
}

function deepMerge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] =
      v !== null && typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object'
        ? deepMerge(out[k], v)
        : v;
  }
  return out;
}

export interface BenchGatewayOptions {
  /** logs() returns only the lines up to "ready" (throughput runs that never look at decisions and
   * would otherwise parse a line per request when they do call it). */
  dropLogsAfterReady?: boolean;
  /** Extra node flags for the gateway process, after CELGATE_BENCH_GATEWAY_NODE_ARGS's. */
  nodeArgs?: readonly string[];
}

/** How often startup polls the log file for the "ready" line. */
const READY_POLL_MS = 20;

function parseLines(text: string): any[] {
  const out: any[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* not a log line (or the last, half-written one) */
    }
  }
  return out;
}

export async function startBenchGateway(
  workDir: string,
  extraConfig: Record<string, unknown> = {},
  options: BenchGatewayOptions = {},
): Promise<BenchGateway> {
  const udsBase = join(workDir, 'vsock');
  const config = deepMerge(
    {
      data_dir: workDir,
      watch_rules: false,
      vsock: {
        mode: 'uds',
        uds_base: udsBase,
        ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
      },
      log: { level: 'info' },
      // The explicit proxy defaults to 127.0.0.1:8080; benchmark gateways run side by side.
      http: { proxy: '127.0.0.1:0' },
    },
    extraConfig,
  );
  const configFile = join(workDir, 'gateway.yaml');
  writeFileSync(configFile, stringify(config));
  const logFile = join(workDir, 'gateway.log');
  const errFile = join(workDir, 'gateway.stderr');
  const outFd = openSync(logFile, 'a');
  const errFd = openSync(errFile, 'a');
  // Extra node flags for the gateway process only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" (profiling a bench).
  const nodeArgs = [
    ...(process.env.CELGATE_BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''),
    ...(options.nodeArgs ?? []),
  ];
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, MAIN_JS, 'start', '--config', configFile],
    { stdio: ['ignore', outFd, errFd] },
  );
  closeSync(outFd);
  closeSync(errFd);
  const readText = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const stderr = () => readText(errFile).slice(-16_384);
  let exitCode: number | null = null;
  const exited = new Promise<number>((r) =>
    child.once('exit', (code) => {
      exitCode = code ?? -1;
      r(exitCode);
    }),
  );
  let ready: any;
  for (const started = Date.now(); ready === undefined;) {
    if (exitCode !== null)
      throw new Error(`gateway exited with ${exitCode} before ready: ${stderr()}`);
    if (Date.now() - started > GATEWAY_READY_TIMEOUT_MS) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready after ${GATEWAY_READY_TIMEOUT_MS} ms: ${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
    ready = parseLines(readText(logFile)).find((l) => l.msg === 'ready');
  }
  const readyLines = parseLines(readText(logFile));
  const controlSocket: string = ready.control_socket;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const api = (method: string, path: string, body?: unknown): Promise<ApiResponse> =>
    controlRequest(controlSocket, method, path, { body, agent });
  const sessionDb = join(ready.session_dir, 'session.db');
  return {
    udsBase,
    sessionDb,
    controlSocket,
    listeners: ready.listeners,
    api,
    logs: () =>
      options.dropLogsAfterReady === true ? readyLines.slice() : parseLines(readText(logFile)),
    stderr,
    ledgerRows: (table, ruleId) => {
      if (!/^[a-z_]+$/.test(table)) throw new Error(`bad table name ${table}`);
      const db = new Database(sessionDb, { readonly: true, fileMustExist: true });
      try {
        return db
          .prepare(`SELECT event_id, rule_id, decision FROM ${table} WHERE rule_id = ?`)
          .all(ruleId) as any[];
      } finally {
        db.close();
      }
    },
    stop: async () => {
      agent.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 8_000);
      await exited;
      clearTimeout(t);
    },
  };
}
