/**
 * McpSession records decisions and mcp_calls rows in batches after the reply: within
 * RECORD_BATCH_MS, at once when MAX_BATCHED_RECORDS are pending, and when the session or the
 * gateway closes — never lost, never before the reply.
 */
import { describe, expect, it, vi } from 'vitest';
import { PolicyEngine, RuleRegistry } from '../../src/policy/index.js';
import { McpGateway } from '../../src/transport/mcp/gateway.js';
import { type Json } from '../../src/transport/mcp/jsonrpc.js';
import {
  MAX_BATCHED_RECORDS,
  McpSession,
  RECORD_BATCH_MS,
} from '../../src/transport/mcp/session.js';
import { RecordingSink, rule } from '../support/mcp.js';

function setup() {
  const registry = new RuleRegistry();
  const r = registry.install(rule('no-sum', 'mcp.request.tool_name == "get-sum"'));
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const sink = new RecordingSink();
  const gw = new McpGateway(
    { upstreams: [], origin: { session_id: 'rec' } },
    { decider: new PolicyEngine(registry), sink, rules: registry },
  );
  const replies: Json[] = [];
  let rowsAtReply: number[] = [];
  const session = new McpSession(gw, 'rec-agent', (m) => {
    replies.push(m);
    rowsAtReply.push(sink.mcpRows.length);
  });
  const call = (id: number) =>
    session.handlePayload(
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'everything__get-sum', arguments: { a: id } },
      }),
    );
  const settle = () => new Promise((res) => setImmediate(res));
  return {
    sink,
    gw,
    session,
    replies,
    rowsAtReply: () => rowsAtReply,
    call,
    settle,
    reset: () => (rowsAtReply = []),
  };
}

async function initialized(t: ReturnType<typeof setup>): Promise<void> {
  t.session.handlePayload(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'r', version: '1' },
      },
    }),
  );
  await t.settle();
  t.reset();
}

describe('McpSession record batching', () => {
  it('writes the rows after the reply, within RECORD_BATCH_MS', async () => {
    const t = setup();
    await initialized(t);
    const before = t.sink.mcpRows.length;
    t.call(1);
    await t.settle();
    expect(t.replies.at(-1)).toMatchObject({ id: 1, error: { data: { rule_id: 'no-sum' } } });
    expect(t.rowsAtReply()).toEqual([before]); // nothing recorded ahead of the reply
    await new Promise((r) => setTimeout(r, 3 * RECORD_BATCH_MS));
    expect(t.sink.mcpRows.filter((r) => r.rule_id === 'no-sum')).toHaveLength(1);
    expect(t.sink.decisions.filter((d) => d.decision.rule_id === 'no-sum')).toHaveLength(1);
    t.session.close();
  });

  it('writes a full batch at once, without waiting for the timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }); // the batch timer never fires here
    const t = setup();
    await initialized(t);
    // Each blocked call defers two records (the decision and the row).
    // (in groups below the per-session in-flight bound)
    for (let i = 1; i <= MAX_BATCHED_RECORDS / 2; i++) {
      t.call(i);
      if (i % 32 === 0) await t.settle();
    }
    await t.settle();
    expect(t.sink.mcpRows.filter((r) => r.rule_id === 'no-sum')).toHaveLength(
      MAX_BATCHED_RECORDS / 2,
    );
    t.session.close();
    vi.useRealTimers();
  });

  it('writes pending records when the gateway closes', async () => {
    const t = setup();
    await initialized(t);
    t.call(7);
    await t.settle();
    expect(t.sink.mcpRows.some((r) => r.request_id === '7')).toBe(false);
    await t.gw.close();
    expect(t.sink.mcpRows.find((r) => r.request_id === '7')).toMatchObject({
      decision: 'block',
      rule_id: 'no-sum',
      process_name: 'rec-agent',
    });
  });
});
