/**
 * MCP lane: the MCP SDK client inside the guest initializes, then makes N `tools/call`s to the
 * `echo` tool of the reference server (@modelcontextprotocol/server-everything, started by the
 * gateway as upstream `everything`). Every call must come back as a JSON-RPC error naming the rule
 * — the SDK client throws McpError for those. One guest process holds two clients and interleaves
 * their N calls each (so both meet the same JIT state and load; the rule's counter and session.db
 * must move by 2N):
 *   `mcp_blocked_call_ms` (gated): SDK Client + McpSocketTransport → the bridge's relay socket
 *     (NDJSON) → bridge relay → host vsock port 5003 (frames) → gateway — what the reference's
 *     "tools/call through the guest-local MCP socket" measures;
 *   `mcp_shim_blocked_call_ms` (reported, no gate): SDK Client + StdioClientTransport → the stdio
 *     shim process (`standalone.js mcp-shim`, as in the bundle) → the same relay → gateway.
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
    let out: Record<'socket' | 'shim', Side> | null = null;
    try {
      out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    } catch {
      /* reported below */
    }
    const side = (mode: 'socket' | 'shim') => {
      const s = out?.[mode];
      const calls = s?.calls ?? [];
      const denied = calls.filter((c) => c.outcome === 'rpc_error' && c.message.includes(ctx.ruleId)).length;
      return {
        ms: calls.map((c) => c.ms),
        initMs: s === undefined ? [] : [s.init_ms],
        checks: [
          { name: `MCP SDK client (${mode}) initialized through the relay`, ok: s !== undefined, detail: s === undefined ? `exit ${r.code}: ${r.stderr.slice(-300)}` : `${s.tools.length} tools` },
          {
            name: `SDK client (${mode}) got a JSON-RPC error naming the rule for all ${ctx.runs} tools/call`,
            ok: denied === ctx.runs,
            detail: `${denied} denied; first: ${calls[0]?.outcome} ${calls[0]?.message.slice(0, 200) ?? ''}`,
          },
        ],
      };
    };
    const viaSocket = side('socket');
    const viaShim = side('shim');
    return {
      results: {
        mcp_blocked_call_ms: viaSocket.ms,
        mcp_initialize_ms: viaSocket.initMs,
        mcp_shim_blocked_call_ms: viaShim.ms,
        mcp_shim_initialize_ms: viaShim.initMs,
      },
      checks: [...viaSocket.checks, ...viaShim.checks],
      events: 2 * ctx.runs,
      notes: { tool: MCP_TOOL, gated_client: 'SDK Client + McpSocketTransport → bridge relay socket', shim_client: 'SDK Client + StdioClientTransport → mcp-shim → bridge relay socket' },
    };
  },
};

type Side = { init_ms: number; tools: string[]; calls: Array<{ ms: number; outcome: string; code: number | null; message: string }> };
