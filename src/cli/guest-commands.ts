/**
 * Guest-side and exec commands: `celgate guest-bridge` (runs inside the guest), `celgate mcp-shim`
 * (stdio ⇄ the bridge's MCP relay socket, for stdio MCP clients), `celgate exec -- <cmd…>` (asks a
 * running gateway to run a command in its guest, under policy), and `startExecService`, the gateway
 * service that serves `POST /v1/exec`. Composition only: the protocol and enforcement live in
 * src/transport/exec and src/transport/guest.
 */
import type { Command } from 'commander';
import { CelgateError } from '../errors.js';
import { execHttpStatus, gatedExec, parseExecInput } from '../transport/exec/gate.js';
import type { GuestExecTarget } from '../transport/exec/client.js';
import { DEFAULT_MCP_SOCKET, runShim } from '../transport/guest/mcp-shim.js';
import { runBridgeMain } from '../transport/guest/standalone.js';
import type { GatewayConfig } from './config.js';
import { loadConfig } from './config.js';
import type { Service, ServiceDeps } from './service.js';
import { HttpError } from '../control/server.js';
import { controlRequest } from '../control/client.js';

/** Exit code of `celgate exec` when policy refused the command (nothing ran in the guest). */
export const EXIT_REFUSED = 126;
/** Exit code when the gateway or the guest could not be reached, or the engine failed. */
export const EXIT_GATEWAY = 125;
/** Exit code when the command could not be started in the guest. */
export const EXIT_NOT_FOUND = 127;

/** Where the gateway reaches the guest exec service, from its config (null when not configured). */
export function execTarget(config: GatewayConfig): GuestExecTarget | null {
  const port = config.vsock.ports.exec;
  if (config.vsock.mode === 'uds')
    return config.vsock.uds_base === null
      ? null
      : { mode: 'uds', udsBase: config.vsock.uds_base, port };
  return port === 0 ? null : { mode: 'tcp', host: config.vsock.host, port };
}

/** The gateway service behind `POST /v1/exec`. */
export async function startExecService(d: ServiceDeps): Promise<Service> {
  const target = execTarget(d.config);
  const origin = { session_id: d.config.session_id, profile_id: d.config.profile };
  return {
    name: 'exec',
    addresses: {
      exec_target:
        target === null
          ? 'none'
          : target.mode === 'uds'
            ? `${target.udsBase} CONNECT ${target.port}`
            : `${target.host}:${target.port}`,
    },
    routes: [
      {
        method: 'POST',
        path: '/v1/exec',
        handler: async (req) => {
          const input = parseExecInput(req.body);
          if (!input.ok) throw new HttpError(400, 'E_CONFIG', 'invalid exec request', input.issues);
          const outcome = await gatedExec(input.value, {
            decider: d.decider,
            sink: d.sink,
            origin,
            target,
            signal: req.signal,
          });
          return { status: execHttpStatus(outcome), json: outcome };
        },
      },
    ],
    close: async () => {},
  };
}

function fail(command: string, err: unknown, code: number): never {
  const e = err as Error & { code?: string };
  process.stderr.write(`celgate ${command}: ${e.code ?? 'E_INTERNAL'}: ${e.message}\n`);
  process.exit(code);
}

function registerBridge(program: Command): void {
  // Flags are parsed by src/transport/guest/args.ts, shared with the single-file bundle.
  program
    .command('guest-bridge')
    .description(
      'Run inside the guest: forward redirected 443/80, DNS stub, MCP relay and exec service to the host over vsock (--help for flags).',
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[flags...]', 'bridge flags; see `celgate guest-bridge --help`')
    .action(async (flags: string[]) => {
      const code = await runBridgeMain(flags);
      if (code !== null) process.exit(code);
    });
}

function registerShim(program: Command): void {
  program
    .command('mcp-shim')
    .description(
      'stdio ⇄ the guest bridge MCP relay socket (use as the command of a stdio MCP client).',
    )
    .option('--socket <path>', 'MCP relay Unix socket', DEFAULT_MCP_SOCKET)
    .option('--process-name <name>', 'process name to report (default: the parent process)')
    .action(async (f: { socket: string; processName?: string }) => {
      process.exit(
        await runShim(
          f.processName === undefined
            ? { socket: f.socket }
            : { socket: f.socket, processName: f.processName },
        ),
      );
    });
}

/** One JSON call to the admin API over its Unix socket. */
function call(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any; text: string }> {
  return controlRequest(socketPath, method, path, { body });
}

interface ExecFlags {
  socket?: string;
  config?: string;
  dataDir?: string;
  session?: string;
  cwd: string;
  timeout?: string;
  json?: boolean;
}

function registerExec(program: Command): void {
  program
    .command('exec')
    .description(
      'Run a command in the guest through a running gateway; policy decides first (exit 126 when refused).',
    )
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option(
      '--socket <path>',
      'admin API socket of the gateway (default: from --config / --data-dir)',
    )
    .option('-c, --config <file>', 'gateway configuration file')
    .option('--data-dir <dir>', 'gateway data directory')
    .option('--session <id>', 'refuse unless the gateway serves this session')
    .option('--cwd <dir>', 'working directory in the guest', '/')
    .option('--timeout <ms>', 'command timeout in milliseconds')
    .option('--json', 'print the full outcome as JSON instead of the command output')
    .action(async (argv: string[], f: ExecFlags) => {
      try {
        const socket = f.socket ?? loadConfig(f.config, { data_dir: f.dataDir }).control.socket;
        if (f.session !== undefined) {
          const health = await call(socket, 'GET', '/v1/health');
          if (health.json?.session_id !== f.session) {
            throw new CelgateError(
              'E_CONFIG',
              `gateway at ${socket} serves session ${String(health.json?.session_id)}, not ${f.session}`,
            );
          }
        }
        const body: Record<string, unknown> = { argv, cwd: f.cwd, process_name: 'celgate-exec' };
        if (f.timeout !== undefined) body.timeout_ms = Number(f.timeout);
        const res = await call(socket, 'POST', '/v1/exec', body);
        const o = res.json;
        if (f.json === true) process.stdout.write(`${JSON.stringify(o ?? res.text)}\n`);
        if (res.status === 400 || o === undefined || typeof o !== 'object') {
          throw new CelgateError(
            'E_CONFIG',
            `gateway answered ${res.status}: ${res.text.slice(0, 500)}`,
          );
        }
        if (o.refused === true) {
          process.stderr.write(
            `celgate exec: refused${o.rule_id === null ? '' : ` by rule ${o.rule_id}`}: ${o.reason}\n`,
          );
          process.exit(o.decision === 'block' ? EXIT_REFUSED : EXIT_GATEWAY);
        }
        if (f.json !== true) {
          process.stdout.write(Buffer.from(o.stdout ?? '', 'base64'));
          process.stderr.write(Buffer.from(o.stderr ?? '', 'base64'));
        }
        if (!o.reached_guest)
          throw new CelgateError('E_UPSTREAM', o.error ?? 'the guest exec service was not reached');
        if (o.error !== null && o.exit_code === null && o.signal === null) {
          process.stderr.write(`celgate exec: ${o.error}\n`);
          process.exit(EXIT_NOT_FOUND);
        }
        process.exit(o.exit_code ?? 128 + signalNumber(o.signal));
      } catch (err) {
        fail('exec', err, EXIT_GATEWAY);
      }
    });
}

function signalNumber(name: string | null): number {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGTERM: 15,
  };
  return name === null ? 0 : (table[name] ?? 0);
}

export function registerGuestCommands(program: Command): void {
  registerBridge(program);
  registerShim(program);
  registerExec(program);
}
