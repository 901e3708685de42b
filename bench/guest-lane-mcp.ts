/**
 * MCP lane: the MCP SDK client inside the guest (stdio transport → the shim (`standalone.js mcp-shim`, as in the bundle) → the bridge's
 * relay socket → host port 5003) initializes, then makes N `tools/call`s to the `echo` tool of the
 * reference server (@modelcontextprotocol/server-everything, started by the gateway as upstream
 * `everything`). Every call must come back as a JSON-RPC error naming the rule — the SDK client
 * throws McpError for those.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { repoRoot } from './artifact.js';
import { BRIDGE_JS } from './guest-netns.js';
import type { LaneContext, LaneDrive, LaneSpec } from './guest-lanes.js';

export const MCP_CLIENT_JS = join(repoRoot(), 'dist', 'bench', 'guest-mcp-client.js');
export const MCP_SERVER_ID = 'everything';
/** The tool as the guest sees it (the gateway namespaces tools as `<server>__<tool>`). */
export const MCP_TOOL = `${MCP_SERVER_ID}__echo`;
/** Warm-up calls go to another tool, blocked by the warm-up rule only. */
export const MCP_WARM_TOOL = 'get-sum';

function everythingServer(): string {
  const require = createRequire(join(repoRoot(), 'package.json'));
  return join(require.resolve('@modelcontextprotocol/server-everything/package.json'), '..', 'dist', 'index.js');
}

export const mcpLane: LaneSpec = {
  name: 'mcp',
  table: 'mcp_calls',
  gatewayConfig: () => ({ mcp: { servers: [{ id: MCP_SERVER_ID, command: process.execPath, args: [everythingServer(), 'stdio'] }] } }),
  condition: (_tag, broken) =>
    `mcp.request.server_id == "${MCP_SERVER_ID}" && mcp.request.tool_name == "echo${broken ? '-never' : ''}"`,
  warmCondition: () => `mcp.request.server_id == "${MCP_SERVER_ID}" && mcp.request.tool_name == "${MCP_WARM_TOOL}"`,
  async drive(ctx: LaneContext): Promise<LaneDrive> {
    const r = await ctx.guest.run(
      [
        process.execPath, MCP_CLIENT_JS, BRIDGE_JS, ctx.guest.mcpSocket, MCP_TOOL, String(ctx.runs), JSON.stringify({ message: ctx.tag }),
        `${MCP_SERVER_ID}__${MCP_WARM_TOOL}`, String(ctx.warmup),
      ],
      { timeoutMs: 120_000 },
    );
    let out: { init_ms: number; tools: string[]; calls: Array<{ ms: number; outcome: string; code: number | null; message: string }> } | null = null;
    try {
      out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    } catch {
      /* reported below */
    }
    const calls = out?.calls ?? [];
    const denied = calls.filter((c) => c.outcome === 'rpc_error' && c.message.includes(ctx.ruleId)).length;
    return {
      results: { mcp_blocked_call_ms: calls.map((c) => c.ms), mcp_initialize_ms: out === null ? [] : [out.init_ms] },
      checks: [
        { name: 'MCP SDK client initialized through the relay', ok: out !== null, detail: out === null ? `exit ${r.code}: ${r.stderr.slice(-300)}` : `${out.tools.length} tools` },
        {
          name: `SDK client got a JSON-RPC error naming the rule for all ${ctx.runs} tools/call`,
          ok: denied === ctx.runs,
          detail: `${denied} denied; first: ${calls[0]?.outcome} ${calls[0]?.message.slice(0, 200) ?? ''}`,
        },
      ],
      events: ctx.runs,
      notes: { tool: MCP_TOOL },
    };
  },
};
