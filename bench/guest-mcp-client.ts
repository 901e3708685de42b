/**
 * Runs INSIDE the guest namespace: the MCP SDK client, over one of two transports to the guest
 * bridge's MCP relay socket —
 *   socket: McpSocketTransport (src/transport/guest/mcp-socket-transport.ts), NDJSON straight on
 *           the relay socket with a `\0META` preamble naming the process (no extra process);
 *   shim:   the SDK's StdioClientTransport spawning the MCP shim (`<entry> mcp-shim`: the bundle's /
 *           standalone.js's, or `celgate`'s), which copies stdio to the relay socket.
 * Both clients initialize and then, interleaved (socket, shim, socket, …) so both meet the same JIT
 * state and load:
 *   1. `warm-up calls` unmeasured calls each to the warm-up tool (the gateway's warm-up);
 *   2. N timed `tools/call`s each to the measured tool — `cold`: the SDK still runs mostly in V8's
 *      interpreter and baseline tiers, as in a freshly started agent;
 *   3. unmeasured calls to the warm-up tool until each client has made `client warm-up calls`;
 *   4. N timed `tools/call`s each to the measured tool again — `calls`: the SDK's steady state.
 * It prints one JSON line: {socket: SIDE, shim: SIDE},
 * SIDE = {init_ms, tools: [names], cold: [CALL], calls: [CALL]}, CALL = {ms, outcome: 'rpc_error'|'tool_error'|'ok', code, message}.
 *
 * usage: node guest-mcp-client.js <entry.js> <relay socket> <tool> <runs> [json arguments] [warm-up tool] [warm-up calls]
 *        [client warm-up calls]
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpSocketTransport } from '../src/transport/guest/mcp-socket-transport.js';

const PROCESS_NAME = 'bench-mcp-client';
const [mainJs, socket, tool, runsText, argsText, warmTool, warmText, clientWarmText] =
  process.argv.slice(2);
if (mainJs === undefined || socket === undefined || tool === undefined) {
  process.stderr.write(
    'usage: guest-mcp-client <main.js> <socket> <tool> <runs> [args-json] [warm-up tool] [warm-up calls] [client warm-up calls]\n',
  );
  process.exit(2);
}
const runs = Number(runsText ?? '8');
const args = argsText === undefined ? {} : (JSON.parse(argsText) as Record<string, unknown>);
type Call = { ms: number; outcome: string; code: number | null; message: string };
type Side = { client: Client; init_ms: number; tools: string[]; calls: Call[] };
const warmCalls = Number(warmText ?? '0');
const clientWarmCalls = Math.max(warmCalls, Number(clientWarmText ?? '0'));

async function connect(transport: Transport): Promise<Side> {
  const client = new Client({ name: 'celgate-bench', version: '1.0.0' });
  const t0 = performance.now();
  await client.connect(transport);
  const side: Side = { client, init_ms: performance.now() - t0, tools: [], calls: [] };
  try {
    side.tools = (await client.listTools()).tools.map((t) => t.name);
  } catch {
    /* listing may itself be policed; calls are what we measure */
  }
  return side;
}

async function call(side: Side): Promise<void> {
  const t = performance.now();
  try {
    const r = await side.client.callTool({ name: tool!, arguments: args });
    side.calls.push({
      ms: performance.now() - t,
      outcome: r.isError === true ? 'tool_error' : 'ok',
      code: null,
      message: JSON.stringify(r.content).slice(0, 300),
    });
  } catch (err) {
    const e = err as { code?: number; message?: string; data?: unknown };
    side.calls.push({
      ms: performance.now() - t,
      outcome: typeof e.code === 'number' ? 'rpc_error' : 'exception',
      code: e.code ?? null,
      message: `${e.message ?? String(err)} ${JSON.stringify(e.data ?? null)}`.slice(0, 500),
    });
  }
}

const sides = {
  socket: await connect(new McpSocketTransport({ socketPath: socket, processName: PROCESS_NAME })),
  shim: await connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [mainJs, 'mcp-shim', '--socket', socket, '--process-name', PROCESS_NAME],
      stderr: 'inherit',
    }),
  ),
};
async function warm(calls: number): Promise<void> {
  for (let i = 0; warmTool !== undefined && i < calls; i++) {
    for (const side of [sides.socket, sides.shim])
      await side.client
        .callTool({ name: warmTool, arguments: { a: 1, b: 2 } })
        .catch(() => undefined);
  }
}

async function timed(): Promise<void> {
  for (let i = 0; i < runs; i++) {
    await call(sides.socket);
    await call(sides.shim);
  }
}

await warm(warmCalls);
await timed();
const cold = { socket: sides.socket.calls.splice(0), shim: sides.shim.calls.splice(0) };
await warm(clientWarmCalls - warmCalls);
await timed();
const report = (s: Side, c: Call[]) => ({
  init_ms: s.init_ms,
  tools: s.tools,
  cold: c,
  calls: s.calls,
});
await sides.socket.client.close();
await sides.shim.client.close();
// Exit only once the line is written: stdout is a pipe, and process.exit() would cut it off.
process.stdout.write(
  `${JSON.stringify({ socket: report(sides.socket, cold.socket), shim: report(sides.shim, cold.shim) })}\n`,
  () => process.exit(0),
);
