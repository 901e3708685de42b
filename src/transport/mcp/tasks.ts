/**
 * A session's MCP tasks (task-augmented `tools/call`): the table that maps celgate's task ids to
 * the server, the server's own id and the tool that started each task, so tasks/get, tasks/result,
 * tasks/cancel and tasks/list reach the right server and are judged as that tool's responses. The
 * guest only ever sees celgate's ids, valid in its own session alone.
 *
 * Owns the table. Must not: decide, record or talk to a server (session.ts does).
 */
import { isJsonObject, type Json, type JsonObject } from './jsonrpc.js';
import type { Route } from './routing.js';

/** Task-augmented calls (MCP tasks) a session may have open at once; the oldest is forgotten past it. */
export const MAX_TASKS_PER_SESSION = 256;
/** The `_meta` key a result uses to name its task. */
export const RELATED_TASK = 'io.modelcontextprotocol/related-task';
/** The methods that address one task by id. */
export const TASK_METHODS: ReadonlySet<string> = new Set([
  'tasks/get',
  'tasks/result',
  'tasks/cancel',
]);

/** One task a guest started: the server and tool it runs on, and the server's own id. */
export interface TaskEntry {
  upstream: NonNullable<Route['upstream']>;
  upstreamId: string;
  tool: string;
  args: JsonObject;
}

/** A CreateTaskResult (`{task: {taskId, …}}`), the answer to a task-augmented call. */
export function createdTaskId(result: Json): string | null {
  return isJsonObject(result) && isJsonObject(result.task) && typeof result.task.taskId === 'string'
    ? result.task.taskId
    : null;
}

export class TaskTable {
  /** By celgate's id; insertion order = age. */
  private readonly tasks = new Map<string, TaskEntry>();

  get(gid: string): TaskEntry | undefined {
    return this.tasks.get(gid);
  }

  /** Routes tasks/get|result|cancel to the task's server, under the server's id; unknown ids (another session's too) are refused. */
  route(method: string, params: JsonObject | undefined): Route {
    const gid = typeof params?.taskId === 'string' ? params.taskId : '';
    const t = this.tasks.get(gid);
    if (t === undefined)
      return {
        upstream: null,
        params,
        tool: '',
        args: {},
        unknown: `Unknown task "${gid}" (${method}): tasks are known only to the session that started them`,
      };
    return {
      upstream: t.upstream,
      params: { ...params, taskId: t.upstreamId },
      tool: t.tool,
      args: t.args,
    };
  }

  /** Remembers a task a tools/call created and returns the result with celgate's id for it. */
  adopt(result: JsonObject, upstreamId: string, route: Route): JsonObject {
    const gid = `celgate-task-${crypto.randomUUID()}`;
    if (this.tasks.size >= MAX_TASKS_PER_SESSION)
      this.tasks.delete(this.tasks.keys().next().value!);
    this.tasks.set(gid, {
      upstream: route.upstream!,
      upstreamId,
      tool: route.tool,
      args: route.args,
    });
    return { ...result, task: { ...(result.task as JsonObject), taskId: gid } };
  }

  /** The tasks grouped by server: each server's ids mapped to celgate's. */
  byServer(): Array<{ upstream: TaskEntry['upstream']; ids: Map<string, string> }> {
    const out = new Map<string, { upstream: TaskEntry['upstream']; ids: Map<string, string> }>();
    for (const [gid, t] of this.tasks) {
      const g = out.get(t.upstream.id) ?? { upstream: t.upstream, ids: new Map<string, string>() };
      g.ids.set(t.upstreamId, gid);
      out.set(t.upstream.id, g);
    }
    return [...out.values()];
  }
}
