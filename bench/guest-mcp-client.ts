/**
 * Runs INSIDE the guest namespace: the MCP SDK client, over its stdio transport, spawning
 * the MCP shim (`<entry> mcp-shim`: the bundle's / standalone.js's, or `celgate`'s) which connects to the guest bridge's MCP relay socket. It initializes, then
 * makes N sequential `tools/call`s to one tool, timing each, and prints one JSON line:
 * {init_ms, tools: [names], calls: [{ms, outcome: 'rpc_error'|'tool_error'|'ok', code, message}]}.
 *
 * usage: node guest-mcp-client.js <entry.js> <relay socket> <tool> <runs> [json arguments] [warm-up tool] [warm-up calls]
 * (warm-up calls are made first, unmeasured and unreported)
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const [mainJs, socket, tool, runsText, argsText, warmTool, warmText] = process.argv.slice(2);
if (mainJs === undefined || socket === undefined || tool === undefined) {
  process.stderr.write('usage: guest-mcp-client <main.js> <socket> <tool> <runs> [args-json]\n');
  process.exit(2);
}
const runs = Number(runsText ?? '8');
const args = argsText === undefined ? {} : (JSON.parse(argsText) as Record<string, unknown>);
const transport = new StdioClientTransport({
  command: process.execPath,
  args: [mainJs, 'mcp-shim', '--socket', socket, '--process-name', 'bench-mcp-client'],
  stderr: 'inherit',
});
const client = new Client({ name: 'celgate-bench', version: '1.0.0' });
const t0 = performance.now();
await client.connect(transport);
const initMs = performance.now() - t0;
let tools: string[] = [];
try {
  tools = (await client.listTools()).tools.map((t) => t.name);
} catch {
  /* listing may itself be policed; calls are what we measure */
}
for (let i = 0; warmTool !== undefined && i < Number(warmText ?? '0'); i++) {
  await client.callTool({ name: warmTool, arguments: { a: 1, b: 2 } }).catch(() => undefined);
}
const calls: Array<{ ms: number; outcome: string; code: number | null; message: string }> = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  try {
    const r = await client.callTool({ name: tool, arguments: args });
    calls.push({ ms: performance.now() - t, outcome: r.isError === true ? 'tool_error' : 'ok', code: null, message: JSON.stringify(r.content).slice(0, 300) });
  } catch (err) {
    const e = err as { code?: number; message?: string; data?: unknown };
    calls.push({ ms: performance.now() - t, outcome: typeof e.code === 'number' ? 'rpc_error' : 'exception', code: e.code ?? null, message: `${e.message ?? String(err)} ${JSON.stringify(e.data ?? null)}`.slice(0, 500) });
  }
}
process.stdout.write(`${JSON.stringify({ init_ms: initMs, tools, calls })}\n`);
await client.close();
process.exit(0);
