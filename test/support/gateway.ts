/**
 * Starts the real built gateway (`node dist/src/cli/main.js start`) for integration tests: a temp
 * data dir, all ports 0 in tcp vsock mode, waits for the "ready" log line, and gives an admin API
 * client over the control socket. Used by every area's integration tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { controlRequest as sharedControlRequest } from '../../src/control/client.js';

export const MAIN_JS = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
export const READY_TIMEOUT_MS = 45_000;

export interface StartGatewayOptions {
  /** Merged over the test defaults and written to a temp YAML file. */
  config?: Record<string, unknown>;
  /** Extra arguments after `start`. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Use this data dir instead of a fresh temp one. */
  dataDir?: string;
}

export interface ApiResponse {
  status: number;
  json: any;
  text: string;
}

export interface RunningTestGateway {
  dataDir: string;
  sessionId: string;
  sessionDir: string;
  sessionDb: string;
  controlSocket: string;
  listeners: Record<string, string>;
  process: ChildProcess;
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Parsed JSON log lines so far (non-JSON stdout lines are skipped). */
  logs(): any[];
  stderr(): string;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number>;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit code (or 128+signal) once the process ended. */
  exited: Promise<number>;
}

/** An admin API call over a Unix socket (the gateway's own client, src/control/client.ts). */
export function controlRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  return sharedControlRequest(socketPath, method, path, { body, headers });
}

function merge(base: Record<string, any>, extra: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    out[k] =
      v !== null &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      typeof out[k] === 'object' &&
      out[k] !== null
        ? merge(out[k], v)
        : v;
  }
  return out;
}

export async function startGateway(opts: StartGatewayOptions = {}): Promise<RunningTestGateway> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'celgate-gw-'));
  const config = merge(
    {
      data_dir: dataDir,
      watch_rules: false,
      vsock: { mode: 'tcp', host: '127.0.0.1', ports: { http: 0, mcp: 0, dns: 0, exec: 0 } },
      http: { proxy: '127.0.0.1:0' },
    },
    opts.config ?? {},
  );
  const configFile = join(dataDir, `config-${process.pid}-${Date.now()}.yaml`);
  writeFileSync(configFile, stringify(config));
  const child = spawn(
    process.execPath,
    [MAIN_JS, 'start', '--config', configFile, ...(opts.args ?? [])],
    {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: any[] = [];
  let stderr = '';
  let partial = '';
  const exited = new Promise<number>((resolve) => {
    // 'close' (not 'exit'): stdout/stderr are fully read by then, so errors quote all of stderr.
    child.once('close', (code, signal) =>
      resolve(
        code ??
          128 +
            (signal === null
              ? 0
              : (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 0)),
      ),
    );
  });
  let onLine: (l: any) => void = () => {};
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
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
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const ready = await new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `gateway not ready after ${READY_TIMEOUT_MS} ms; stderr:\n${stderr}\nstdout:\n${JSON.stringify(lines.slice(-20))}`,
        ),
      );
    }, READY_TIMEOUT_MS);
    onLine = (l) => {
      if (l.msg === 'ready') {
        clearTimeout(timer);
        resolve(l);
      }
    };
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(
          `gateway exited with ${code} before ready; stderr:\n${stderr}\nstdout:\n${JSON.stringify(lines.slice(-20))}`,
        ),
      );
    });
  });
  onLine = () => {};
  const controlSocket: string = ready.control_socket;
  const sessionDir: string = ready.session_dir;
  return {
    dataDir,
    sessionId: ready.session_id,
    sessionDir,
    sessionDb: join(sessionDir, 'session.db'),
    controlSocket,
    listeners: ready.listeners,
    process: child,
    api: (method, path, body) => controlRequest(controlSocket, method, path, body),
    logs: () => lines.slice(),
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: (signal = 'SIGKILL') => {
      child.kill(signal);
    },
    exited,
  };
}
