/**
 * The MCP gateway end to end, in process: the official SDK Client as the guest (through the frame
 * transport over tcp vsock), server-everything and the flaky fixture as stdio upstreams, a real
 * RuleRegistry + PolicyEngine deciding, and a recording sink standing in for session.db.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { FramedConnection, RpcCode } from '../../src/transport/mcp/index.js';
import { EVERYTHING, FLAKY, rule, startHarness, type Harness } from '../support/mcp.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    upstreams: [EVERYTHING, FLAKY],
    callTimeoutMs: 1_500,
    rules: [
      rule('no-sum', 'mcp.request.tool_name == "get-sum"'),
      rule(
        'no-env-on-everything',
        '(mcp.request.server_id == "everything") && mcp.request.tool_name == "get-env"',
      ),
      rule('no-etc', 'mcp.request.arguments.path.startsWith("/etc")', 'block', {
        reason: 'reading /etc is not allowed',
      }),
      rule('no-aws-keys-out', 'mcp.response.content_text.contains("AKIA")', 'block', {
        reason: 'the result contains an AWS key',
      }),
      rule(
        'no-resource-2',
        'mcp.response.method == "resources/read" && mcp.response.content_text.contains("# Everything Server - Extension Points")',
        'block',
      ),
    ],
  });
});
afterAll(async () => h?.close());

async function callError(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('MCP gateway with the SDK client as the guest', () => {
  it('initializes as celgate and advertises tools', async () => {
    const c = await h.client();
    expect(c.getServerVersion()?.name).toBe('celgate');
    expect(c.getServerCapabilities()?.tools).toBeDefined();
  });

  it('lists namespaced tools and hides the ones a rule always denies', async () => {
    const c = await h.client();
    const names = (await c.listTools()).tools.map((t) => t.name);
    expect(names).toContain('everything__echo');
    expect(names).toContain('flaky__ok');
    expect(names).not.toContain('everything__get-sum');
    expect(names).not.toContain('everything__get-env');
    // get-env is only denied on "everything"; read_file is only denied for some arguments.
    expect(names).toContain('flaky__read_file');
  });

  it('forwards an allowed echo call and returns the server result', async () => {
    const c = await h.client();
    const r = await c.callTool({ name: 'everything__echo', arguments: { message: 'hi there' } });
    expect(r.content).toEqual([{ type: 'text', text: 'Echo: hi there' }]);
    await h.sink.recorded();
    const row = h.sink.mcpRows.find((x) => x.direction === 'request' && x.tool_name === 'echo');
    expect(row).toMatchObject({
      server_id: 'everything',
      method: 'tools/call',
      decision: 'allow',
      is_error: false,
    });
    expect(row!.args_digest).toMatch(/^[0-9a-f]{16}$/);
    expect(
      h.sink.mcpRows.some(
        (x) => x.direction === 'response' && x.tool_name === 'echo' && x.decision === 'allow',
      ),
    ).toBe(true);
  });

  it('blocks a tools/call to a denied tool and says which rule, telling the model not to retry', async () => {
    const c = await h.client();
    const err = await callError(
      c.callTool({ name: 'everything__get-sum', arguments: { a: 1, b: 2 } }),
    );
    expect(err.code).toBe(RpcCode.POLICY_BLOCKED);
    expect(err.message).toContain('no-sum');
    expect(err.message).toMatch(/do not retry/);
    expect(err.data).toMatchObject({
      decision: 'block',
      rule_id: 'no-sum',
      reason: expect.stringContaining('test rule no-sum'),
      retryable: false,
    });
    await h.sink.recorded();
    const row = h.sink.mcpRows.find((x) => x.tool_name === 'get-sum');
    expect(row).toMatchObject({
      decision: 'block',
      rule_id: 'no-sum',
      direction: 'request',
      is_error: true,
      process_name: 'test-agent',
    });
    const decided = h.sink.decisions.find(
      (d) => d.event.common.event_type === 'mcp.request' && d.decision.rule_id === 'no-sum',
    );
    expect(decided?.decision.action).toBe('block');
  });

  it('applies argument rules (mcp.request.arguments.path.startsWith("/etc"))', async () => {
    const c = await h.client();
    const ok = await c.callTool({
      name: 'flaky__read_file',
      arguments: { path: '/home/user/notes.txt' },
    });
    expect(ok.content).toEqual([{ type: 'text', text: 'contents of /home/user/notes.txt' }]);
    const err = await callError(
      c.callTool({ name: 'flaky__read_file', arguments: { path: '/etc/shadow' } }),
    );
    expect(err.data).toMatchObject({
      rule_id: 'no-etc',
      reason: expect.stringContaining('reading /etc is not allowed'),
    });
  });

  it('blocks a tool result with a response-side rule before it reaches the guest', async () => {
    const c = await h.client();
    const err = await callError(c.callTool({ name: 'flaky__secret', arguments: {} }));
    expect(err.code).toBe(RpcCode.POLICY_BLOCKED);
    expect(err.data).toMatchObject({ rule_id: 'no-aws-keys-out', stage: 'result' });
    expect(JSON.stringify(err)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    await h.sink.recorded();
    const rows = h.sink.mcpRows.filter((x) => x.tool_name === 'secret');
    expect(rows.map((r) => [r.direction, r.decision, r.is_error])).toEqual([
      ['response', 'block', false],
      ['request', 'allow', true],
    ]);
  });

  it('decides resources/read results too, before they reach the guest', async () => {
    const c = await h.client();
    const resources = (await c.listResources()).resources;
    const texts = await Promise.all(
      resources.slice(0, 4).map((r) =>
        c.readResource({ uri: r.uri }).then(
          (x) => JSON.stringify(x.contents),
          (e: McpError) => e,
        ),
      ),
    );
    const denied = texts.filter((t): t is McpError => t instanceof McpError);
    expect(denied.length).toBeGreaterThan(0);
    expect(denied[0]!.data).toMatchObject({ rule_id: 'no-resource-2', stage: 'result' });
    expect(texts.some((t) => typeof t === 'string')).toBe(true);
    await h.sink.recorded();
    expect(
      h.sink.mcpRows.some(
        (r) =>
          r.direction === 'response' && r.method === 'resources/read' && r.decision === 'block',
      ),
    ).toBe(true);
  });

  it('answers an unknown tool name with invalid params, after deciding it', async () => {
    const c = await h.client();
    const err = await callError(c.callTool({ name: 'nosuch__tool', arguments: {} }));
    expect(err.code).toBe(RpcCode.INVALID_PARAMS);
  });

  it('times out a hanging server call with -32000 and keeps the session usable', async () => {
    const c = await h.client();
    const err = await callError(c.callTool({ name: 'flaky__hang', arguments: {} }));
    expect(err.code).toBe(RpcCode.SERVER_ERROR);
    expect(err.data).toMatchObject({ reason: 'timeout' });
    const ok = await c.callTool({ name: 'flaky__ok', arguments: {} });
    expect((ok.content as { text: string }[])[0]!.text).toMatch(/^ok pid=/);
  });

  it('fails calls cleanly when a server crashes, then restarts it with backoff', async () => {
    const c = await h.client();
    const before = await c.callTool({ name: 'flaky__ok', arguments: {} });
    const pid1 = (before.content as { text: string }[])[0]!.text;
    const err = await callError(c.callTool({ name: 'flaky__crash', arguments: {} }));
    expect(err.code).toBe(RpcCode.SERVER_ERROR);
    expect(err.data).toMatchObject({ reason: 'crashed' });
    const up = h.service.gateway.upstreams.get('flaky')!;
    for (let i = 0; i < 100 && up.state !== 'ready'; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(up.state).toBe('ready');
    expect(up.restarts).toBeGreaterThanOrEqual(1);
    const after = await c.callTool({ name: 'flaky__ok', arguments: {} });
    expect((after.content as { text: string }[])[0]!.text).not.toBe(pid1);
  });

  it('routes resources and prompts to the server that offers them', async () => {
    const c = await h.client();
    const resources = (await c.listResources()).resources;
    expect(resources.length).toBeGreaterThan(0);
    const read = await c.readResource({ uri: resources[0]!.uri });
    expect(read.contents.length).toBeGreaterThan(0);
    const prompts = (await c.listPrompts()).prompts;
    const simple = prompts.find(
      (p) => p.name.startsWith('everything__') && !(p.arguments ?? []).some((a) => a.required),
    );
    expect(simple).toBeDefined();
    const got = await c.getPrompt({ name: simple!.name });
    expect(got.messages.length).toBeGreaterThan(0);
    expect(await c.ping()).toEqual({});
  });

  it('multiplexes independent sessions as streams of one connection', async () => {
    const conn = await FramedConnection.connect(h.endpoint);
    const a = new Client({ name: 'a', version: '1' });
    const b = new Client({ name: 'b', version: '1' });
    await a.connect(conn.openTransport('agent-a'));
    await b.connect(conn.openTransport('agent-b'));
    const [ra, rb] = await Promise.all([
      a.callTool({ name: 'everything__echo', arguments: { message: 'from a' } }),
      b.callTool({ name: 'everything__echo', arguments: { message: 'from b' } }),
    ]);
    expect(ra.content).toEqual([{ type: 'text', text: 'Echo: from a' }]);
    expect(rb.content).toEqual([{ type: 'text', text: 'Echo: from b' }]);
    await a.close();
    expect(await b.ping()).toEqual({});
    await h.sink.recorded();
    expect(h.sink.mcpRows.some((r) => r.process_name === 'agent-b' && r.tool_name === 'echo')).toBe(
      true,
    );
    await b.close();
    conn.close();
  });

  it("relays progress notifications with the guest's own progress token", async () => {
    const c = await h.client();
    const progress: number[] = [];
    const r = await c.callTool(
      {
        name: 'everything__trigger-long-running-operation',
        arguments: { duration: 0.3, steps: 3 },
      },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(r.isError).not.toBe(true);
    expect(progress.length).toBeGreaterThanOrEqual(1);
  });

  it('applies a rule installed at runtime from the next request, and tells sessions to re-list tools', async () => {
    const c = await h.client();
    expect((await c.listTools()).tools.map((t) => t.name)).toContain('flaky__ok');
    let changed = 0;
    c.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    expect(
      h.registry.install(
        rule('no-ok', 'mcp.request.tool_name == "ok" && mcp.request.server_id == "flaky"'),
      ).ok,
    ).toBe(true);
    try {
      for (let i = 0; i < 40 && changed === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(changed).toBeGreaterThan(0);
      expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('flaky__ok');
      const err = await callError(c.callTool({ name: 'flaky__ok', arguments: {} }));
      expect(err.data).toMatchObject({ rule_id: 'no-ok' });
    } finally {
      h.registry.delete('no-ok');
    }
  });
});
