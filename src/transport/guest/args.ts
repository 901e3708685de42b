/**
 * The guest bridge's command line, shared by `celgate guest-bridge` and the single-file bundle
 * (`npm run bundle:bridge` → dist/celgate-guest-bridge.mjs, entry standalone.ts). Pure: argv in,
 * BridgeOptions (or `help`) out; bad input throws CelgateError E_CONFIG naming the flag.
 */
import { CelgateError } from '../../errors.js';
import {
  DEFAULT_FORWARD_PORT,
  DEFAULT_GUEST_PORTS,
  type BridgeOptions,
  type HostPort,
} from './bridge.js';

export const BRIDGE_USAGE = `usage: guest-bridge [options]
Runs inside the guest: forwards redirected TCP 443/80, a DNS stub, an MCP relay and the exec service
to the host over vsock. Prints {"msg":"ready",...} on stdout when listening.

  --mode <uds|tcp>              vsock transport (default uds)
  --uds-base <path>             uds mode: hybrid-vsock base path (required in uds mode)
  --host <addr>                 tcp mode: the host address (default 127.0.0.1)
  --port-http <n>               host HTTP/HTTPS vsock port (default ${DEFAULT_GUEST_PORTS.http})
  --port-mcp <n>                host MCP vsock port (default ${DEFAULT_GUEST_PORTS.mcp})
  --port-dns <n>                host DNS vsock port (default ${DEFAULT_GUEST_PORTS.dns})
  --port-exec <n>               guest exec port (default ${DEFAULT_GUEST_PORTS.exec})
  --forward <host:port|off>     TCP forwarder (iptables REDIRECT target; default 127.0.0.1:${DEFAULT_FORWARD_PORT})
  --dns <host:port|off>         DNS stub, UDP and TCP (default 127.0.0.1:53)
  --mcp-socket <path|off>       MCP relay Unix socket (default /run/celgate/mcp.sock)
  --mcp-process-name <name>     process name for MCP clients without a preamble (default mcp-client)
  --exec-listen <host:port|off> tcp mode: exec service listen address (default off)
  --no-exec                     uds mode: do not serve the exec port behind the base socket
  --identify-processes          send the client's process name (from /proc) for forwarded connections
  -h, --help                    this text
`;

function hostPort(flag: string, value: string): HostPort | null {
  if (value === 'off') return null;
  const i = value.lastIndexOf(':');
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !/^\d+$/.test(value.slice(i + 1)) || port > 65535)
    throw new CelgateError('E_CONFIG', `${flag}: "${value}" is not HOST:PORT or "off"`);
  return { host: value.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

function vsockPort(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 0xffffffff)
    throw new CelgateError('E_CONFIG', `${flag}: "${value}" is not a vsock port`);
  return n;
}

const VALUE_FLAGS = new Set([
  '--mode',
  '--uds-base',
  '--host',
  '--port-http',
  '--port-mcp',
  '--port-dns',
  '--port-exec',
  '--forward',
  '--dns',
  '--mcp-socket',
  '--mcp-process-name',
  '--exec-listen',
]);

/** Parses bridge flags (`--flag value` or `--flag=value`). */
export function parseBridgeArgs(argv: readonly string[]): BridgeOptions | 'help' {
  const v = new Map<string, string>();
  let exec = true;
  let identifyProcesses = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '--no-exec') {
      exec = false;
      continue;
    }
    if (arg === '--identify-processes') {
      identifyProcesses = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!VALUE_FLAGS.has(name))
      throw new CelgateError('E_CONFIG', `unknown option ${JSON.stringify(arg)} (see --help)`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new CelgateError('E_CONFIG', `${name} needs a value`);
    v.set(name, value);
  }
  const mode = v.get('--mode') ?? 'uds';
  if (mode !== 'uds' && mode !== 'tcp')
    throw new CelgateError('E_CONFIG', `--mode must be uds or tcp, got "${mode}"`);
  const udsBase = v.get('--uds-base') ?? null;
  if (mode === 'uds' && (udsBase === null || udsBase === ''))
    throw new CelgateError('E_CONFIG', '--uds-base is required in uds mode');
  const port = (flag: string, fallback: number) =>
    v.has(flag) ? vsockPort(flag, v.get(flag)!) : fallback;
  const mcp = v.get('--mcp-socket') ?? '/run/celgate/mcp.sock';
  return {
    mode,
    host: v.get('--host') ?? '127.0.0.1',
    udsBase,
    ports: {
      http: port('--port-http', DEFAULT_GUEST_PORTS.http),
      mcp: port('--port-mcp', DEFAULT_GUEST_PORTS.mcp),
      dns: port('--port-dns', DEFAULT_GUEST_PORTS.dns),
      exec: port('--port-exec', DEFAULT_GUEST_PORTS.exec),
    },
    forward: hostPort('--forward', v.get('--forward') ?? `127.0.0.1:${DEFAULT_FORWARD_PORT}`),
    dns: hostPort('--dns', v.get('--dns') ?? '127.0.0.1:53'),
    mcpSocket: mcp === 'off' ? null : mcp,
    mcpProcessName: v.get('--mcp-process-name') ?? 'mcp-client',
    execListen: hostPort('--exec-listen', v.get('--exec-listen') ?? 'off'),
    exec,
    identifyProcesses,
  };
}
