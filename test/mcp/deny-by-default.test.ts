/**
 * A deny-by-default profile (like `locked`): session methods and one tool explicitly allowed;
 * tools/list shows only what can be called, and everything else is refused by the default.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { RpcCode } from '../../src/transport/mcp/index.js';
import { EVERYTHING, rule, startHarness, type Harness } from '../support/mcp.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    upstreams: [EVERYTHING],
    defaultAction: 'block',
    rules: [
      rule('mcp-session', 'mcp.request.method in ["initialize", "ping", "tools/list"]', 'allow'),
      rule(
        'allow-echo',
        'mcp.request.server_id == "everything" && mcp.request.tool_name == "echo"',
        'allow',
      ),
      rule('allow-results', 'mcp.response.server_id == "everything"', 'allow'),
    ],
  });
});
afterAll(async () => h?.close());

describe('deny-by-default profile', () => {
  it('lists only the allowed tool, calls it, and refuses the rest by default', async () => {
    const c = await h.client();
    expect((await c.listTools()).tools.map((t) => t.name)).toEqual(['everything__echo']);
    expect(
      (await c.callTool({ name: 'everything__echo', arguments: { message: 'ok' } })).content,
    ).toEqual([{ type: 'text', text: 'Echo: ok' }]);
    const err = await c
      .callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } })
      .catch((e: McpError) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(RpcCode.POLICY_BLOCKED);
    expect((err as McpError).data).toMatchObject({ rule_id: null, decision: 'block' });
    expect((err as McpError).message).toContain('the default policy');
    await expect(c.listResources()).rejects.toMatchObject({ code: RpcCode.POLICY_BLOCKED });
  });
});
