/**
 * MCP tasks (task-augmented tools/call) through the gateway, with server-everything's task tool
 * `simulate-research-query` and the official SDK client: the task's result is judged as the result
 * of its tool call (a response rule blocks it), its status as a response of that tool, ids are
 * celgate's and valid only in the session that started the task, and ledger rows name the tool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError, ResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { EVERYTHING, rule, startHarness, type Harness } from '../support/mcp.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    upstreams: [EVERYTHING],
    callTimeoutMs: 15_000,
    rules: [
      rule(
        'no-secret-research',
        'mcp.response.tool_name == "simulate-research-query" && mcp.response.content_text.contains("TOPSECRET")',
        'block',
        {
          reason: 'research results about TOPSECRET stay inside',
        },
      ),
    ],
  });
});
afterAll(async () => h?.close());

const TOOL = 'everything__simulate-research-query';
const req = (c: Client, method: string, params: Record<string, unknown>) =>
  c.request({ method, params } as never, ResultSchema.passthrough());

async function failure(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

async function startTask(c: Client, topic: string): Promise<string> {
  const created = (await req(c, 'tools/call', {
    name: TOOL,
    arguments: { topic },
    task: { ttl: 60_000 },
  })) as { task?: { taskId?: string } };
  const id = created.task?.taskId;
  expect(id).toMatch(/^celgate-task-/);
  return id!;
}

async function completed(c: Client, taskId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const status = (await req(c, 'tasks/get', { taskId })) as Record<string, unknown>;
    expect(status.taskId).toBe(taskId);
    if (status.status === 'completed' || status.status === 'failed') return status;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('task did not complete');
}

describe('MCP tasks through celgate', () => {
  it('advertises task support for tool calls', async () => {
    const c = await h.client();
    expect(c.getServerCapabilities()?.tasks).toMatchObject({ requests: { tools: { call: {} } } });
  });

  it(
    'judges a task result as the result of its tool call: a response rule blocks it',
    { timeout: 30_000 },
    async () => {
      const c = await h.client('agent-a');
      const secret = await startTask(c, 'TOPSECRET plans');
      const harmless = await startTask(c, 'the weather');
      await completed(c, secret);
      await completed(c, harmless);
      const blocked = await failure(req(c, 'tasks/result', { taskId: secret }));
      expect(blocked.message).toContain('no-secret-research');
      const ok = (await req(c, 'tasks/result', { taskId: harmless })) as {
        content?: { text?: string }[];
      };
      expect(ok.content?.[0]?.text).toContain('# Research Report: the weather');
      await h.sink.recorded();
      const rows = h.sink.mcpRows.filter(
        (r) =>
          r.method === 'tasks/result' ||
          (r.direction === 'response' && r.tool_name === 'simulate-research-query'),
      );
      expect(rows.length).toBeGreaterThanOrEqual(4);
      for (const r of rows) expect(r.tool_name).toBe('simulate-research-query');
      expect(rows.some((r) => r.decision === 'block' && r.rule_id === 'no-secret-research')).toBe(
        true,
      );
      const listed = (await req(c, 'tasks/list', {})) as { tasks: { taskId: string }[] };
      expect(listed.tasks.map((t) => t.taskId).sort()).toEqual([harmless, secret].sort());
    },
  );

  it(
    'keeps tasks to the session that started them: another session gets "unknown task" and lists none of them',
    { timeout: 30_000 },
    async () => {
      const a = await h.client('agent-a');
      const b = await h.client('agent-b');
      const id = await startTask(a, 'private topic');
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel']) {
        const e = await failure(req(b, method, { taskId: id }));
        expect(e.message, method).toMatch(/Unknown task/);
      }
      expect(((await req(b, 'tasks/list', {})) as { tasks: unknown[] }).tasks).toEqual([]);
      // The server's own ids are not accepted either: only celgate's, in the right session.
      const e = await failure(req(b, 'tasks/get', { taskId: id.replace('celgate-task-', '') }));
      expect(e.message).toMatch(/Unknown task/);
      const cancelled = (await req(a, 'tasks/cancel', { taskId: id })) as {
        taskId: string;
        status: string;
      };
      expect(cancelled).toMatchObject({ taskId: id, status: 'cancelled' });
    },
  );
});
