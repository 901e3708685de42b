/**
 * Entry point of the guest bridge: `celgate guest-bridge …` calls `runBridgeMain`, and the
 * single-file bundle (`npm run bundle:bridge` → dist/celgate-guest-bridge.mjs, copied into VM
 * images) runs it directly — `… mcp-shim [--socket P]` there runs the MCP stdio shim instead. Parses the flags (args.ts), starts the bridge, prints one ready line,
 * logs part failures as JSON lines on stderr, stops cleanly on SIGTERM/SIGINT.
 *
 * Owns: process wiring for the bridge. Must not: import anything beyond the bridge (keeps the
 * bundle small: no store, no policy, no native modules).
 */
import { pathToFileURL } from 'node:url';
import { BRIDGE_USAGE, parseBridgeArgs } from './args.js';
import { startBridge } from './bridge.js';
import { parseShimArgs, runShim, SHIM_USAGE } from './mcp-shim.js';

/** Runs the bridge until a signal; resolves with an exit code only on startup failure. */
export async function runBridgeMain(argv: readonly string[]): Promise<number | null> {
  let opts;
  try {
    opts = parseBridgeArgs(argv);
  } catch (err) {
    process.stderr.write(`guest-bridge: ${(err as Error).message}\n${BRIDGE_USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(BRIDGE_USAGE);
    return 0;
  }
  try {
    const bridge = await startBridge({
      ...opts,
      onError: (what, err) =>
        process.stderr.write(
          `${JSON.stringify({ level: 'warn', msg: what, err: (err as Error).message })}\n`,
        ),
    });
    process.stdout.write(
      `${JSON.stringify({ msg: 'ready', pid: process.pid, addresses: bridge.addresses })}\n`,
    );
    const stop = () => void bridge.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return null;
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`guest-bridge: ${e.code ?? 'E_INTERNAL'}: ${e.message}\n`);
    return 2;
  }
}

/** `mcp-shim …` runs the MCP stdio shim; anything else is bridge flags. */
export async function runStandalone(argv: readonly string[]): Promise<number | null> {
  if (argv[0] !== 'mcp-shim') return runBridgeMain(argv);
  let opts;
  try {
    opts = parseShimArgs(argv.slice(1));
  } catch (err) {
    process.stderr.write(`mcp-shim: ${(err as Error).message}\n${SHIM_USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(SHIM_USAGE);
    return 0;
  }
  return runShim(opts);
}

const entry = process.argv[1];
if (
  entry !== undefined &&
  (import.meta.url === pathToFileURL(entry).href || /celgate-guest-bridge\.m?js$/.test(entry))
) {
  void runStandalone(process.argv.slice(2)).then((code) => {
    if (code !== null) process.exit(code);
  });
}
