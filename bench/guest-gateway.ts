/**
 * Starts the real built gateway (`node dist/src/cli/main.js start`) for the guest lanes, in uds
 * vsock mode so a namespace guest can reach it, and talks to its admin API over the control socket
 * with a kept-alive agent. Like test/helpers/gateway.ts, but importable from the built bench
 * (dist/bench only contains src/ and bench/).
 *
 * Owns: the gateway process, its log lines, admin API calls, reading its session.db. Must not:
 * measure or assert (lanes do).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
  ledgerRows(table: string, ruleId: string): Array<{ event_id: string; rule_id: string; decision: string }>;
  stop(): Promise<void>;
}

function deepMerge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' ? deepMerge(out[k], v) : v;
  }
  return out;
}

export interface BenchGatewayOptions {
  /** Stop parsing log lines after "ready" (throughput runs: the parent is also the client, and
   * parsing one JSON line per request would slow the client, not the gateway). logs() then ends there. */
  dropLogsAfterReady?: boolean;
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
      vsock: { mode: 'uds', uds_base: udsBase, ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 } },
      log: { level: 'info' },
      // The explicit proxy defaults to 127.0.0.1:8080; benchmark gateways run side by side.
      http: { proxy: '127.0.0.1:0' },
    },
    extraConfig,
  );
  const configFile = join(workDir, 'gateway.yaml');
  writeFileSync(configFile, stringify(config));
  const child: ChildProcess = spawn(process.execPath, [MAIN_JS, 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: any[] = [];
  let stderr = '';
  let partial = '';
  let onLine: (l: any) => void = () => {};
  let dropping = false;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    if (dropping) return;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        const parsed = JSON.parse(line);
        lines.push(parsed);
        onLine(parsed);
      } catch {
        /* not a log line */
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-16_384);
  });
  const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)));
  const ready = await new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway not ready after ${GATEWAY_READY_TIMEOUT_MS} ms: ${stderr}`));
    }, GATEWAY_READY_TIMEOUT_MS);
    onLine = (l) => {
      if (l.msg === 'ready') {
        clearTimeout(timer);
        resolve(l);
      }
    };
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before ready: ${stderr}`));
    });
  });
  onLine = () => {};
  if (options.dropLogsAfterReady === true) {
    dropping = true;
    partial = '';
  }
  const controlSocket: string = ready.control_socket;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const api = (method: string, path: string, body?: unknown): Promise<ApiResponse> => controlRequest(controlSocket, method, path, { body, agent });
  const sessionDb = join(ready.session_dir, 'session.db');
  return {
    udsBase,
    sessionDb,
    controlSocket,
    listeners: ready.listeners,
    api,
    logs: () => lines.slice(),
    stderr: () => stderr,
    ledgerRows: (table, ruleId) => {
      if (!/^[a-z_]+$/.test(table)) throw new Error(`bad table name ${table}`);
      const db = new Database(sessionDb, { readonly: true, fileMustExist: true });
      try {
        return db.prepare(`SELECT event_id, rule_id, decision FROM ${table} WHERE rule_id = ?`).all(ruleId) as any[];
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
