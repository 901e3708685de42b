/**
 * One guest MCP session (one frame stream, or one NDJSON connection): JSON-RPC validation, the
 * initialize handshake, per-method routing, the `mcp.request` decision before every dispatch and
 * the `mcp.response` decision before every tool result is returned, denials, cancellation, and
 * the ledger rows. It owns no socket: payload text in, messages out through `send`. Its tasks'
 * id table is tasks.ts.
 */
import {
  SUPPORTED_PROTOCOL_VERSIONS,
  LATEST_PROTOCOL_VERSION,
} from '@modelcontextprotocol/sdk/types.js';
import { mcpRequestEvent, mcpResponseEvent } from '../../events/build.js';
import type { Decision } from '../../events/decision.js';
import type { McpRequestEvent, SecurityEvent } from '../../events/types.js';
import {
  RESPONSE_CHECKED_METHODS,
  argsDigest,
  argsPreview,
  denialError,
  mcpCallRow,
  resultText,
} from './facts.js';
import type { McpGateway } from './gateway.js';
import { routeRequest, type Route } from './routing.js';
import {
  RpcCode,
  errorResponse,
  isJsonObject,
  notification,
  parsePayload,
  resultResponse,
  type Json,
  type JsonObject,
  type RpcErrorObject,
  type RpcMessage,
} from './jsonrpc.js';
import { Cancel, type UpstreamReply } from './upstream.js';
import { RELATED_TASK, TASK_METHODS, TaskTable, createdTaskId, type TaskEntry } from './tasks.js';
import { CELGATE_VERSION } from '../../version.js';

/** Digest and preview of one arguments object, computed once for its request and response rows. */
const argsCache = new WeakMap<JsonObject, { args_digest: string; args_preview: string }>();
function argsFacts(args: JsonObject): { args_digest: string; args_preview: string } {
  let f = argsCache.get(args);
  if (!f)
    argsCache.set(args, (f = { args_digest: argsDigest(args), args_preview: argsPreview(args) }));
  return f;
}

/** Most requests of one session waiting for an upstream at once. */
export const MAX_INFLIGHT_PER_SESSION = 64;
/**
 * Decisions and rows are recorded in batches at most this long after the call was decided (the
 * ledger itself commits every 50 ms), so the log and ledger work of many calls runs once, between
 * calls, instead of once per call while the next request or an upstream reply waits for the loop.
 */
export const RECORD_BATCH_MS = 10;
/** A batch is recorded at once when it reaches this many records (bounded memory under load). */
export const MAX_BATCHED_RECORDS = 256;

type Outcome = { result: Json } | { error: RpcErrorObject } | { none: true };

export class McpSession {
  private initialized = false;
  private answeredInitialize = false;
  private busy = 0;
  private records: (() => void)[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly inflight = new Map<string, Cancel>();
  private readonly tasks = new TaskTable();
  private readonly unregister: () => void;
  private closed = false;

  constructor(
    private readonly gw: McpGateway,
    readonly processName: string,
    private readonly send: (message: Json) => void,
  ) {
    this.unregister = gw.register(this);
  }

  /** Handles one payload. Returns a close reason when the payload is hostile (stream must close). */
  handlePayload(text: string): string | null {
    const parsed = parsePayload(text);
    if (!parsed.ok) {
      if ('fatal' in parsed) return parsed.fatal;
      this.send(errorResponse(null, parsed.reply));
      return null;
    }
    if (!parsed.batch) {
      void this.handle(parsed.messages[0]!).then((r) => {
        if (r !== null) this.emit(r);
      });
      return null;
    }
    void Promise.all(parsed.messages.map((m) => this.handle(m))).then((replies) => {
      const out = replies.filter((r): r is JsonObject => r !== null);
      if (out.length > 0) this.emit(out);
    });
    return null;
  }

  notify(method: string, params?: JsonObject): void {
    if (this.initialized) this.emit(notification(method, params));
  }

  close(): void {
    this.flush();
    this.closed = true;
    this.unregister();
    for (const c of this.inflight.values()) c.abort();
    this.inflight.clear();
  }

  private emit(message: Json): void {
    if (!this.closed) this.send(message);
  }

  /**
   * Decides now; records (sink.decision) later, in a batch, after the reply or the upstream dispatch
   * went out, so ledger and log work stays off the call's path. Nothing is lost: pending records
   * are written within RECORD_BATCH_MS, as soon as MAX_BATCHED_RECORDS are pending, and on close.
   */
  private decide(event: SecurityEvent): Decision {
    const decision = this.gw.decide(event, false);
    this.defer(() => this.gw.record(event, decision));
    return decision;
  }

  /** decide() for a request, which an `ask` rule may hold for an approver (docs/approvals.md). */
  private decideRequest(event: SecurityEvent): Decision | Promise<Decision> {
    const d = this.gw.decideHeld(event);
    if (!(d instanceof Promise)) {
      this.defer(() => this.gw.record(event, d));
      return d;
    }
    return d.then((decision) => {
      this.defer(() => this.gw.record(event, decision));
      return decision;
    });
  }

  private defer(fn: () => void): void {
    this.records.push(fn);
    if (this.records.length === MAX_BATCHED_RECORDS) setImmediate(() => this.flush());
    else if (this.flushTimer === null)
      this.flushTimer = setTimeout(() => this.flush(), RECORD_BATCH_MS);
  }

  private flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.records.length === 0) return;
    const pending = this.records;
    this.records = [];
    for (const fn of pending) {
      try {
        fn();
      } catch {
        // A sink must not throw (FanoutSink counts its own failures); never let it break a session.
      }
    }
  }

  private async handle(m: RpcMessage): Promise<JsonObject | null> {
    try {
      switch (m.type) {
        case 'invalid':
          return errorResponse(m.id, { code: RpcCode.INVALID_REQUEST, message: m.message });
        case 'response':
          return null; // celgate sends the guest no requests; stray responses are dropped
        case 'notification':
          this.onNotification(m.method, isJsonObject(m.params) ? m.params : undefined);
          return null;
        case 'request': {
          const out = await this.request(m.id, m.method, m.params);
          if ('none' in out) return null;
          return 'error' in out ? errorResponse(m.id, out.error) : resultResponse(m.id, out.result);
        }
      }
    } catch (err) {
      const id = m.type === 'request' || m.type === 'invalid' ? m.id : null;
      return errorResponse(id, {
        code: RpcCode.INTERNAL_ERROR,
        message: `celgate internal error: ${(err as Error)?.message ?? String(err)}`,
      });
    }
  }

  private onNotification(method: string, params: JsonObject | undefined): void {
    if (method === 'notifications/initialized') this.initialized = true;
    else if (method === 'notifications/cancelled' && params) {
      const key = JSON.stringify(params.requestId ?? null);
      this.inflight.get(key)?.abort();
    }
    // Other client notifications (roots/list_changed, progress) have no upstream meaning here.
  }

  /** Every request of the session that may wait on an upstream counts against one bound. */
  private async request(
    id: string | number,
    method: string,
    rawParams: JsonObject | Json[] | undefined,
  ): Promise<Outcome> {
    if (this.busy >= MAX_INFLIGHT_PER_SESSION && method !== 'ping') {
      return {
        error: {
          code: RpcCode.INVALID_REQUEST,
          message: `Invalid Request: more than ${MAX_INFLIGHT_PER_SESSION} requests in flight`,
        },
      };
    }
    this.busy++;
    try {
      return await this.dispatch(id, method, rawParams);
    } finally {
      this.busy--;
    }
  }

  private async dispatch(
    id: string | number,
    method: string,
    rawParams: JsonObject | Json[] | undefined,
  ): Promise<Outcome> {
    if (rawParams !== undefined && !isJsonObject(rawParams)) {
      return {
        error: {
          code: RpcCode.INVALID_PARAMS,
          message: 'Invalid params: MCP params must be an object',
        },
      };
    }
    const params = rawParams;
    if (method === 'initialize') return this.initialize(id, params);
    if (method === 'ping') return this.local(id, method, {}, () => ({ result: {} }));
    // Requests are accepted once initialize has been answered (even if notifications/initialized is late).
    if (!this.answeredInitialize) {
      return {
        error: {
          code: RpcCode.INVALID_REQUEST,
          message: 'Invalid Request: the session is not initialized; send initialize first',
        },
      };
    }
    switch (method) {
      case 'tools/list':
        return this.local(id, method, {}, async () => ({
          result: { tools: await this.gw.listTools() },
        }));
      case 'prompts/list':
        return this.list(id, method, 'prompts', 'prompts', true);
      case 'resources/list':
        return this.list(id, method, 'resources', 'resources', false);
      case 'resources/templates/list':
        return this.list(id, method, 'resourceTemplates', 'resources', false);
      case 'tasks/list':
      case 'tasks/get':
      case 'tasks/result':
      case 'tasks/cancel':
        // Without a server that runs tasks these are unknown methods, as any other.
        if (this.gw.serversWith('tasks').length === 0)
          return this.forward(id, method, params, routeRequest(this.gw, method, params));
        return method === 'tasks/list'
          ? this.listTasks(id)
          : this.forward(id, method, params, this.tasks.route(method, params));
      case 'logging/setLevel':
        return this.local(id, method, params ?? {}, async () => {
          await Promise.all(
            this.gw
              .serversWith('logging')
              .map((u) => u.request(method, params, { timeoutMs: this.gw.callTimeoutMs })),
          );
          return { result: {} };
        });
      default:
        return this.forward(id, method, params, routeRequest(this.gw, method, params));
    }
  }

  private initialize(id: string | number, params: JsonObject | undefined): Promise<Outcome> {
    return this.local(id, 'initialize', params ?? {}, () => {
      const asked = typeof params?.protocolVersion === 'string' ? params.protocolVersion : '';
      this.answeredInitialize = true;
      return {
        result: {
          protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(asked)
            ? asked
            : LATEST_PROTOCOL_VERSION,
          capabilities: this.gw.capabilities(),
          serverInfo: { name: 'celgate', version: CELGATE_VERSION },
          instructions:
            'Tools are provided by celgate on behalf of host MCP servers and are named "<server>__<tool>". Calls are subject to security policy.',
        },
      };
    });
  }

  private list(
    id: string | number,
    method: string,
    key: string,
    capability: string,
    rename: boolean,
  ): Promise<Outcome> {
    return this.local(id, method, {}, async () => {
      const items = await this.gw.listAll(method, key, capability, rename);
      return Array.isArray(items) ? { result: { [key]: items } } : { error: items };
    });
  }

  /** A request celgate answers itself (after deciding it like any other). */
  private async local(
    id: string | number,
    method: string,
    args: JsonObject,
    answer: () => Outcome | Promise<Outcome>,
  ): Promise<Outcome> {
    const started = performance.now();
    const event = this.requestEvent(id, method, '', '', args);
    const held = this.decideRequest(event);
    const decision = held instanceof Promise ? await held : held;
    const out =
      decision.action === 'allow'
        ? await answer()
        : { error: denialError(decision, event.common.event_id, 'request') };
    this.row(event, decision, 'request', '', args, 'error' in out, performance.now() - started);
    return out;
  }

  /** tasks/list: this session's tasks only, each asked of its own server. */
  private listTasks(id: string | number): Promise<Outcome> {
    return this.local(id, 'tasks/list', {}, async () => {
      const tasks: JsonObject[] = [];
      for (const { upstream, ids } of this.tasks.byServer()) {
        const reply = await upstream.request(
          'tasks/list',
          {},
          { timeoutMs: this.gw.callTimeoutMs },
        );
        if ('error' in reply || !isJsonObject(reply.result) || !Array.isArray(reply.result.tasks))
          continue;
        for (const item of reply.result.tasks) {
          const gid =
            isJsonObject(item) && typeof item.taskId === 'string'
              ? ids.get(item.taskId)
              : undefined;
          if (gid === undefined || !isJsonObject(item)) continue;
          const t = this.tasks.get(gid)!;
          const checked = this.checkStatus(id, 'tasks/list', t, { ...item, taskId: gid });
          if ('result' in checked) tasks.push(checked.result as JsonObject);
        }
      }
      return { result: { tasks } };
    });
  }

  /** A task status (tasks/get, tasks/cancel, an item of tasks/list) is judged as an mcp.response of its tool. */
  private checkStatus(
    reqId: string | number,
    method: string,
    t: TaskEntry,
    status: JsonObject,
  ): Outcome {
    const text = typeof status.statusMessage === 'string' ? status.statusMessage : '';
    const event = mcpResponseEvent(
      { ...this.gw.options.origin, process_name: this.processName },
      {
        method,
        server_id: t.upstream.id,
        tool_name: t.tool,
        is_error: status.status === 'failed',
        content_text: text,
      },
    );
    const decision = this.decide(event);
    this.row(
      event,
      decision,
      'response',
      t.upstream.id,
      t.args,
      status.status === 'failed',
      0,
      String(reqId),
      t.tool,
    );
    return decision.action === 'allow'
      ? { result: status }
      : { error: denialError(decision, event.common.event_id, 'result') };
  }

  private async forward(
    id: string | number,
    method: string,
    params: JsonObject | undefined,
    route: Route,
  ): Promise<Outcome> {
    const started = performance.now();
    const server = route.upstream?.id ?? '';
    const event = this.requestEvent(id, method, server, route.tool, route.args);
    const held = this.decideRequest(event);
    const decision = held instanceof Promise ? await held : held;
    const finish = (out: Outcome, isError: boolean): Outcome => {
      this.row(
        event,
        decision,
        'request',
        server,
        route.args,
        isError,
        performance.now() - started,
      );
      return out;
    };
    if (decision.action !== 'allow')
      return finish({ error: denialError(decision, event.common.event_id, 'request') }, true);
    // The guest went away while the call was held for an approver: nothing goes upstream.
    if (this.closed)
      return finish(
        {
          error: {
            code: RpcCode.INTERNAL_ERROR,
            message: 'the session closed while the request waited for approval',
          },
        },
        true,
      );
    if (!route.upstream) {
      const code = route.unknown?.startsWith('Method not found')
        ? RpcCode.METHOD_NOT_FOUND
        : RpcCode.INVALID_PARAMS;
      return finish(
        { error: { code, message: route.unknown ?? 'no server for this request' } },
        true,
      );
    }
    const key = JSON.stringify(id);
    if (this.inflight.has(key)) {
      return finish(
        {
          error: {
            code: RpcCode.INVALID_REQUEST,
            message: `Invalid Request: request id ${key} is already in flight`,
          },
        },
        true,
      );
    }
    const abort = new Cancel();
    this.inflight.set(key, abort);
    const reply: UpstreamReply = await route.upstream.request(method, route.params ?? params, {
      timeoutMs: this.gw.callTimeoutMs,
      signal: abort,
      onProgress: (p) => {
        const token = isJsonObject(params?._meta) ? params._meta.progressToken : undefined;
        if (token !== undefined)
          this.emit(notification('notifications/progress', { ...p, progressToken: token }));
      },
    });
    this.inflight.delete(key);
    if (abort.aborted) return finish({ none: true }, true); // cancelled by the guest: no reply
    if ('error' in reply) return finish(reply, true);
    const upstreamMs = performance.now() - started;
    let result = reply.result;
    if (TASK_METHODS.has(method)) {
      // Results carry celgate's task id; a task's result is judged as the result of its tool call,
      // and its status as a response of that tool.
      const gid = String(params?.taskId ?? '');
      const t = this.tasks.get(gid)!;
      if (method === 'tasks/result') {
        if (
          isJsonObject(result) &&
          isJsonObject(result._meta) &&
          isJsonObject(result._meta[RELATED_TASK])
        ) {
          result = {
            ...result,
            _meta: {
              ...result._meta,
              [RELATED_TASK]: { ...result._meta[RELATED_TASK], taskId: gid },
            },
          };
        }
        const out = this.checkResult(event, 'tools/call', server, route, result, upstreamMs);
        return finish(out, 'error' in out || (isJsonObject(result) && result.isError === true));
      }
      const out = isJsonObject(result)
        ? this.checkStatus(id, method, t, { ...result, taskId: gid })
        : { result };
      return finish(out, 'error' in out);
    }
    const created =
      method === 'tools/call' && isJsonObject(params?.task) ? createdTaskId(result) : null;
    if (created !== null)
      return finish({ result: this.tasks.adopt(result as JsonObject, created, route) }, false);
    if (!RESPONSE_CHECKED_METHODS.has(method)) return finish(reply, false);
    const out = this.checkResult(event, method, server, route, result, upstreamMs);
    return finish(out, 'error' in out || (isJsonObject(result) && result.isError === true));
  }

  /** The mcp.response decision: a result (tools/call, resources/read, prompts/get) reaches the guest only if allowed. */
  private checkResult(
    req: McpRequestEvent,
    method: string,
    server: string,
    route: Route,
    result: Json,
    durationMs: number,
  ): Outcome {
    const isError = isJsonObject(result) && result.isError === true;
    const event = mcpResponseEvent(
      {
        session_id: req.common.session_id,
        vm_id: req.common.vm_id,
        profile_id: req.common.profile_id,
        process_name: this.processName,
      },
      {
        method,
        server_id: server,
        tool_name: route.tool,
        is_error: isError,
        content_text: resultText(result, method),
      },
    );
    const decision = this.decide(event);
    this.row(
      event,
      decision,
      'response',
      server,
      route.args,
      isError,
      durationMs,
      req.mcp.request.request_id,
      route.tool,
    );
    if (decision.action !== 'allow')
      return { error: denialError(decision, event.common.event_id, 'result') };
    return { result };
  }

  private requestEvent(
    id: string | number,
    method: string,
    server: string,
    tool: string,
    args: JsonObject,
  ): McpRequestEvent {
    const o = this.gw.options.origin;
    return mcpRequestEvent(
      { ...o, process_name: this.processName },
      { method, server_id: server, tool_name: tool, arguments: args, request_id: String(id) },
    );
  }

  /** Writes the mcp_calls row after the reply has gone out (off the call's latency). */
  private row(...args: Parameters<McpSession['writeRow']>): void {
    this.defer(() => this.writeRow(...args));
  }

  private writeRow(
    event: McpRequestEvent | ReturnType<typeof mcpResponseEvent>,
    decision: Decision,
    direction: 'request' | 'response',
    server: string,
    args: JsonObject,
    isError: boolean,
    durationMs: number,
    requestId?: string,
    tool?: string,
  ): void {
    const req = 'request' in event.mcp ? event.mcp.request : null;
    const res = 'response' in event.mcp ? event.mcp.response : null;
    this.gw.deps.sink.mcp(
      mcpCallRow(event, decision, {
        direction,
        server,
        method: req?.method ?? res?.method ?? '',
        tool: req?.tool_name ?? tool ?? '',
        requestId: req?.request_id ?? requestId ?? '',
        args: argsFacts(args),
        isError,
        durationMs,
        transport: 'vsock',
      }),
    );
  }
}
