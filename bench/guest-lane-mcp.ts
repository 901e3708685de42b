/**
 * MCP lane: the MCP SDK client inside the guest initializes, then makes N `tools/call`s to the
 * `echo` tool of the reference server (@modelcontextprotocol/server-everything, started by the
 * gateway as upstream `everything`). Every call must come back as a JSON-RPC error naming the rule
 * — the SDK client throws McpError for those. One guest process holds two clients and interleaves
 * their calls (so both meet the same JIT state and load):
 *   `mcp_blocked_call_ms` (gated): SDK Client + McpSocketTransport → the bridge's relay socket
 *     (NDJSON) → bridge relay → host vsock port 5003 (frames) → gateway — what the reference's
 *     "tools/call through the guest-local MCP socket" measures;
 *   `mcp_shim_blocked_call_ms` (reported, no gate): SDK Client + StdioClientTransport → the stdio
 *     shim process (`standalone.js mcp-shim`, as in the bundle) → the same relay → gateway.
 * Each client's N calls are timed twice (bench/guest-mcp-client.ts): once right after the lane's
 * usual warm-up (`*_cold_ms`, reported: what a freshly started agent's SDK client sees) and once
 * after MCP_CLIENT_WARM_CALLS calls (the gated results: the SDK's steady state). So the rule's
 * counter and session.db must move by 4N.
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
/**
 * Calls each SDK client makes (to the warm-up tool) before its steady-state timed calls. The SDK
 * client — not the gateway — is what stays cold for long: V8 optimizes its per-call path (zod
 * validation of every message, McpError for a JSON-RPC error) only after hundreds of calls. Mean of
 * 8 blocked calls on the 2-core machine, one run each, by warm-up calls: 20 → 0.86 ms, 500 → 1.00,
 * 1,000 → 0.30, 2,000 → 0.42, 3,000 → 0.40, 5,000 → 0.36 (raw NDJSON on the same socket, no SDK:
 * 0.30–0.45). 2,000 calls take ~2 s per client. A long-running agent's client is in this state.
 */
export const MCP_CLIENT_WARM_CALLS = 2000;

function everythingServer(): string {
  const require = createRequire(join(repoRoot(), 'package.json'));
  return join(
    require.resolve('@modelcontextprotocol/server-everything/package.json'),
    '..',
    'dist',
    'index.js',
  );
}

export const mcpLane: LaneSpec = {
  name: 'mcp',
  table: 'mcp_calls',
  gatewayConfig: () => ({
    mcp: {
      servers: [
        { id: MCP_SERVER_ID, command: process.execPath, args: [everythingServer(), 'stdio'] },
      ],
    },
  }),
  condition: (_tag, broken) =>
    `mcp.request.server_id == "${MCP_SERVER_ID}" && mcp.request.tool_name == "echo${broken ? '-never' : ''}"`,
  warmCondition: () =>
    `mcp.request.server_id == "${MCP_SERVER_ID}" && mcp.request.tool_name == "${MCP_WARM_TOOL}"`,
  async drive(ctx: LaneContext): Promise<LaneDrive> {
    const r = await ctx.guest.run(
      [
        process.execPath,
        MCP_CLIENT_JS,
        BRIDGE_JS,
        ctx.guest.mcpSocket,
        MCP_TOOL,
        String(ctx.runs),
        JSON.stringify({ message: ctx.tag }),
        `${MCP_SERVER_ID}__${MCP_WARM_TOOL}`,
        String(ctx.warmup),
        String(MCP_CLIENT_WARM_CALLS),
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
      const deniedCheck = (calls: Call[], when: string) => {
        const denied = calls.filter(
          (c) => c.outcome === 'rpc_error' && c.message.includes(ctx.ruleId),
        ).length;
        return {
          name: `SDK client (${mode}) got a JSON-RPC error naming the rule for all ${ctx.runs} ${when} tools/call`,
          ok: denied === ctx.runs,
          detail: `${denied} denied; first: ${calls[0]?.outcome} ${calls[0]?.message.slice(0, 200) ?? ''}`,
        };
      };
      return {
        ms: (s?.calls ?? []).map((c) => c.ms),
        coldMs: (s?.cold ?? []).map((c) => c.ms),
        initMs: s === undefined ? [] : [s.init_ms],
        checks: [
          {
            name: `MCP SDK client (${mode}) initialized through the relay`,
            ok: s !== undefined,
            detail:
              s === undefined
                ? `exit ${r.code}: ${r.stderr.slice(-300)}`
                : `${s.tools.length} tools`,
          },
          deniedCheck(s?.cold ?? [], 'cold'),
          deniedCheck(s?.calls ?? [], 'steady-state'),
        ],
      };
    };
    const viaSocket = side('socket');
    const viaShim = side('shim');
    return {
      results: {
        mcp_blocked_call_ms: viaSocket.ms,
        mcp_blocked_call_cold_ms: viaSocket.coldMs,
        mcp_initialize_ms: viaSocket.initMs,
        mcp_shim_blocked_call_ms: viaShim.ms,
        mcp_shim_blocked_call_cold_ms: viaShim.coldMs,
        mcp_shim_initialize_ms: viaShim.initMs,
      },
      checks: [...viaSocket.checks, ...viaShim.checks],
      events: 4 * ctx.runs,
      notes: {
        tool: MCP_TOOL,
        gated_client: 'SDK Client + McpSocketTransport → bridge relay socket',
        shim_client: 'SDK Client + StdioClientTransport → mcp-shim → bridge relay socket',
        client_warm_calls: MCP_CLIENT_WARM_CALLS,
        cold: '*_cold_ms: the same N calls timed right after the lane warm-up, before the client warm-up',
      },
    };
  },
};

type Call = { ms: number; outcome: string; code: number | null; message: string };
type Side = { init_ms: number; tools: string[]; cold: Call[]; calls: Call[] };
