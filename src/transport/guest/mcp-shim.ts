/**
 * The MCP stdio shim: joins a stdio MCP client to the guest bridge's relay socket. Configure the
 * client's server command as `celgate mcp-shim` (or `node celgate-guest-bridge.mjs mcp-shim`): it
 * connects to the relay socket, sends a `\0META` preamble naming the client process (its parent,
 * from /proc), then copies stdin → socket and socket → stdout until either side closes.
 *
 * Owns: that copy. Must not: read or change the JSON-RPC it carries.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import { encodeMetaPreamble } from '../vsock.js';

export const DEFAULT_MCP_SOCKET = '/run/celgate/mcp.sock';

export const SHIM_USAGE = `usage: mcp-shim [--socket <path>] [--process-name <name>]
Connects stdio to the guest bridge's MCP relay socket (default ${DEFAULT_MCP_SOCKET}).
`;

/** The name of the process that started us (the MCP client), from /proc; '' when unknown. */
export function parentProcessName(): string {
  try {
    return readFileSync(`/proc/${process.ppid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

export interface ShimOptions {
  socket: string;
  processName?: string;
}

/** Parses `--socket P --process-name N` (or `=` forms). Throws E_CONFIG; 'help' for -h/--help. */
export function parseShimArgs(argv: readonly string[]): ShimOptions | 'help' {
  const out: ShimOptions = { socket: DEFAULT_MCP_SOCKET };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (name !== '--socket' && name !== '--process-name')
      throw new CelgateError('E_CONFIG', `unknown option ${JSON.stringify(arg)}`);
    if (value === undefined || value === '')
      throw new CelgateError('E_CONFIG', `${name} needs a value`);
    if (name === '--socket') out.socket = value;
    else out.processName = value;
  }
  return out;
}

/** Runs the shim; resolves with the exit code when the relay connection ends. */
export function runShim(
  opts: ShimOptions,
  stdin: NodeJS.ReadableStream = process.stdin,
  stdout: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(opts.socket);
    let connected = false;
    s.on('error', (err) => {
      if (!connected)
        process.stderr.write(
          `mcp-shim: E_UNAVAILABLE: cannot reach ${opts.socket}: ${err.message}\n`,
        );
      resolve(connected ? 0 : 1);
    });
    s.once('connect', () => {
      connected = true;
      const name = opts.processName ?? parentProcessName();
      if (name !== '') s.write(encodeMetaPreamble({ process_name: name, pid: process.ppid }));
      stdin.pipe(s);
      s.pipe(stdout);
    });
    s.on('close', () => resolve(connected ? 0 : 1));
  });
}
