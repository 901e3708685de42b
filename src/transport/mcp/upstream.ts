/**
 * One upstream MCP server on the host (a stdio child process or a Streamable HTTP endpoint), as the
 * gateway's JSON-RPC client: initialize handshake, id mapping, per-call timeout, cancellation,
 * progress routing, tools cache, and restart with backoff after a crash. It decides nothing; the
 * gateway decides before it calls `request`. `request` never rejects: failures come back as
 * JSON-RPC error objects (code -32000, `data.reason`).
 */
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { StdioUpstreamTransport } from './stdio.js';
import {
  RpcCode,
  isJsonObject,
  type Json,
  type JsonObject,
  type RpcErrorObject,
} from './jsonrpc.js';
import { CELGATE_VERSION } from '../../version.js';

export interface UpstreamConfig {
  id: string;
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  url?: string;
  headers?: Record<string, string>;
}

export interface UpstreamOptions {
  /** Bound on the initialize handshake. */
  startTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Called for every notification the server sends (after the upstream consumed what it needs). */
  onNotification?: (upstream: Upstream, method: string, params: JsonObject | undefined) => void;
  log?: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
}

export type UpstreamReply = { result: Json } | { error: RpcErrorObject };

/** A cheap cancellation handle (an AbortController per call costs more than the rest of the hop). */
export class Cancel {
  aborted = false;
  private hook: (() => void) | null = null;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.hook?.();
  }
  /** @internal */
  onAbort(hook: () => void): void {
    this.hook = hook;
  }
}
export type UpstreamState = 'starting' | 'ready' | 'down' | 'closed';

/** Most calls waiting on one server at once, across every guest session. */
export const MAX_PENDING_PER_UPSTREAM = 1024;
/** A server that stays up this long resets the backoff. */
export const STABLE_AFTER_MS = 5_000;
/** Bounds on what one server may list (pages and items) for tools/list aggregation. */
export const MAX_LIST_PAGES = 50;
export const MAX_LIST_ITEMS = 5_000;

interface Pending {
  resolve: (reply: UpstreamReply) => void;
  /** performance.now() after which the call times out; `expire` runs when it does. */
  deadline: number;
  expire: () => void;
  onProgress: ((params: JsonObject) => void) | undefined;
  progressToken: string | undefined;
}

const serverError = (reason: string, message: string): { error: RpcErrorObject } => ({
  error: { code: RpcCode.SERVER_ERROR, message, data: { reason } },
});

export class Upstream {
  state: UpstreamState = 'down';
  capabilities: JsonObject = {};
  serverInfo: JsonObject = {};
  restarts = 0;
  private transport: Transport | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly progress = new Map<string, Pending>();
  private ready: Promise<void> | null = null;
  private attempts = 0;
  private upSince = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private toolsCache: JsonObject[] | null = null;
  /**
   * One timer for every pending call's timeout, armed for the earliest deadline, instead of a
   * setTimeout/clearTimeout pair per call (in a CPU profile of bench/mcp.ts mcp-echo-overhead the
   * per-call pair held about a tenth of the gateway's samples per echo). Calls with the usual timeout join in deadline
   * order, so arming happens only when the timer fires or a call has an earlier deadline.
   */
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;

  constructor(
    readonly config: UpstreamConfig,
    private readonly opts: UpstreamOptions,
  ) {}

  get id(): string {
    return this.config.id;
  }

  /** Connects and initializes; resolves when ready. A failure schedules a restart and rejects. */
  start(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new Error('upstream closed'));
    if (this.ready && this.state !== 'down') return this.ready;
    this.state = 'starting';
    this.ready = this.connect().then(
      () => {
        if (this.state !== 'starting') return; // it exited during the handshake; a restart is scheduled
        this.state = 'ready';
        this.upSince = Date.now();
        this.opts.log?.('info', 'mcp upstream ready', {
          server: this.id,
          server_info: this.serverInfo,
        });
      },
      (err: unknown) => {
        this.opts.log?.('warn', 'mcp upstream failed to start', {
          server: this.id,
          error: String(err),
        });
        this.onDown(`failed to start: ${(err as Error).message ?? String(err)}`);
        throw err;
      },
    );
    this.ready.catch(() => {});
    return this.ready;
  }

  private async connect(): Promise<void> {
    const t = this.makeTransport();
    this.transport = t;
    t.onmessage = (m) => this.onMessage(t, m as unknown as JsonObject);
    t.onclose = () => {
      if (this.transport === t) this.onDown('exited');
    };
    t.onerror = (err) =>
      this.opts.log?.('debug', 'mcp upstream transport error', {
        server: this.id,
        error: String(err),
      });
    await t.start();
    const init = await this.send(
      'initialize',
      {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'celgate', version: CELGATE_VERSION },
      },
      this.opts.startTimeoutMs,
    );
    if ('error' in init) throw new Error(`initialize failed: ${init.error.message}`);
    const result = isJsonObject(init.result) ? init.result : {};
    this.capabilities = isJsonObject(result.capabilities) ? result.capabilities : {};
    this.serverInfo = isJsonObject(result.serverInfo) ? result.serverInfo : {};
    const version =
      typeof result.protocolVersion === 'string' ? result.protocolVersion : LATEST_PROTOCOL_VERSION;
    (t as { setProtocolVersion?: (v: string) => void }).setProtocolVersion?.(version);
    await t.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  private makeTransport(): Transport {
    const c = this.config;
    if (c.url !== undefined) {
      return new StreamableHTTPClientTransport(
        new URL(c.url),
        c.headers ? { requestInit: { headers: c.headers } } : undefined,
      );
    }
    return new StdioUpstreamTransport({
      command: c.command!,
      args: c.args ?? [],
      env: { ...getDefaultEnvironment(), ...(c.env ?? {}) },
      ...(c.cwd !== undefined ? { cwd: c.cwd } : {}),
      onStderrLine: (line) =>
        this.opts.log?.('debug', 'mcp upstream stderr', { server: this.id, line }),
    });
  }

  /**
   * Sends a request and waits for the reply, at most `timeoutMs`. `signal` aborts (the server is
   * told with notifications/cancelled). Waits for a starting server; fails fast on a down one.
   */
  async request(
    method: string,
    params: JsonObject | undefined,
    opts: { timeoutMs: number; signal?: Cancel; onProgress?: (params: JsonObject) => void },
  ): Promise<UpstreamReply> {
    if (this.state === 'starting' && this.ready) {
      const waited = await withTimeout(
        this.ready.then(
          () => true,
          () => false,
        ),
        opts.timeoutMs,
      );
      if (waited !== true)
        return serverError(
          'unavailable',
          `MCP server "${this.id}" is not available (still starting or failed to start)`,
        );
    }
    if (this.state !== 'ready') {
      return serverError(
        'unavailable',
        `MCP server "${this.id}" is unavailable (${this.state}; restart attempt ${this.attempts}); the call was not made`,
      );
    }
    return this.send(method, params, opts.timeoutMs, opts.signal, opts.onProgress);
  }

  private send(
    method: string,
    params: JsonObject | undefined,
    timeoutMs: number,
    signal?: Cancel,
    onProgress?: (params: JsonObject) => void,
  ): Promise<UpstreamReply> {
    const t = this.transport;
    if (!t)
      return Promise.resolve(
        serverError('unavailable', `MCP server "${this.id}" is not connected`),
      );
    if (this.pending.size >= MAX_PENDING_PER_UPSTREAM) {
      return Promise.resolve(
        serverError(
          'busy',
          `MCP server "${this.id}" already has ${MAX_PENDING_PER_UPSTREAM} calls in flight; try again later`,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<UpstreamReply>((resolve) => {
      const entry: Pending = {
        resolve,
        deadline: performance.now() + timeoutMs,
        expire: () => {},
        onProgress: undefined,
        progressToken: undefined,
      };
      let sendParams = params;
      const meta = params && isJsonObject(params._meta) ? params._meta : undefined;
      if (
        meta &&
        onProgress &&
        (typeof meta.progressToken === 'string' || typeof meta.progressToken === 'number')
      ) {
        // Rewrite the guest's token so tokens of different guest sessions cannot collide upstream.
        entry.progressToken = `celgate-${this.id}-${id}`;
        entry.onProgress = onProgress;
        sendParams = { ...params, _meta: { ...meta, progressToken: entry.progressToken } };
        this.progress.set(entry.progressToken, entry);
      }
      const finish = (reply: UpstreamReply) => {
        if (!this.pending.delete(id)) return;
        if (entry.progressToken) this.progress.delete(entry.progressToken);
        resolve(reply);
      };
      entry.resolve = finish;
      this.pending.set(id, entry);
      entry.expire = () => {
        this.cancelUpstream(id, 'timeout');
        finish(
          serverError(
            'timeout',
            `MCP server "${this.id}" did not answer ${method} within ${timeoutMs} ms; the call was cancelled`,
          ),
        );
      };
      this.armSweep(entry.deadline);
      if (signal) {
        const onAbort = () => {
          this.cancelUpstream(id, 'cancelled by the client');
          finish({
            error: {
              code: RpcCode.SERVER_ERROR,
              message: 'request cancelled',
              data: { reason: 'cancelled' },
            },
          });
        };
        if (signal.aborted) return onAbort();
        signal.onAbort(onAbort);
      }
      const msg = {
        jsonrpc: '2.0',
        id,
        method,
        ...(sendParams !== undefined ? { params: sendParams } : {}),
      };
      t.send(msg as JSONRPCMessage).catch((err: unknown) => {
        finish(
          serverError(
            'send_failed',
            `could not send to MCP server "${this.id}": ${(err as Error).message ?? String(err)}`,
          ),
        );
        // The connection is gone (a dead child, an HTTP server that restarted and lost the session):
        // reconnect and re-initialize with backoff rather than failing every later call the same way.
        if (this.transport === t && this.state === 'ready') this.onDown('could not be reached');
      });
    });
  }

  /** Makes sure the sweep runs no later than `deadline`. */
  private armSweep(deadline: number): void {
    if (deadline >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = deadline;
    this.sweepTimer = setTimeout(
      () => this.sweep(),
      Math.max(0, Math.ceil(deadline - performance.now())),
    );
    // A call in flight keeps the process up through the server's pipes or socket, not this timer.
    this.sweepTimer.unref();
  }

  /** Times out every call past its deadline, then re-arms for the earliest one left. */
  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const entry of [...this.pending.values()]) {
      if (entry.deadline <= now) entry.expire();
      else if (entry.deadline < next) next = entry.deadline;
    }
    if (next !== Infinity && this.state !== 'closed') this.armSweep(next);
  }

  private cancelUpstream(id: number, reason: string): void {
    this.transport
      ?.send({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: id, reason },
      })
      .catch(() => {});
  }

  notify(method: string, params?: JsonObject): void {
    if (this.state !== 'ready') return;
    const msg = { jsonrpc: '2.0', method, ...(params !== undefined ? { params } : {}) };
    this.transport?.send(msg as JSONRPCMessage).catch(() => {});
  }

  private onMessage(t: Transport, m: JsonObject): void {
    if (t !== this.transport) return;
    if (typeof m.method === 'string') {
      if ('id' in m && (typeof m.id === 'string' || typeof m.id === 'number')) {
        // A server-to-client request: celgate advertises no client capabilities; only ping works.
        const reply =
          m.method === 'ping'
            ? { jsonrpc: '2.0', id: m.id, result: {} }
            : {
                jsonrpc: '2.0',
                id: m.id,
                error: {
                  code: RpcCode.METHOD_NOT_FOUND,
                  message: `celgate does not forward ${m.method} to the guest`,
                },
              };
        t.send(reply as JSONRPCMessage).catch(() => {});
        return;
      }
      const params = isJsonObject(m.params) ? m.params : undefined;
      if (m.method === 'notifications/progress' && params) {
        const entry = this.progress.get(String(params.progressToken));
        entry?.onProgress?.(params);
        return;
      }
      if (m.method === 'notifications/tools/list_changed') this.toolsCache = null;
      this.opts.onNotification?.(this, m.method, params);
      return;
    }
    if (typeof m.id !== 'number') return;
    const entry = this.pending.get(m.id);
    if (!entry) return;
    if (isJsonObject(m.error)) {
      const e = m.error;
      entry.resolve({
        error: {
          code: typeof e.code === 'number' ? e.code : RpcCode.INTERNAL_ERROR,
          message: typeof e.message === 'string' ? e.message : 'upstream error',
          ...(e.data !== undefined ? { data: e.data } : {}),
        },
      });
    } else entry.resolve({ result: (m.result ?? null) as Json });
  }

  private onDown(why: string): void {
    // Idempotent: a failed start reports both the transport close and the rejected handshake.
    if (this.state === 'closed' || this.state === 'down') return;
    const wasUp = this.state === 'ready';
    this.state = 'down';
    this.toolsCache = null;
    const t = this.transport;
    this.transport = null;
    t?.close().catch(() => {});
    for (const entry of [...this.pending.values()]) {
      entry.resolve(
        serverError(
          'crashed',
          `MCP server "${this.id}" ${why} before answering; the call did not complete. celgate is restarting it`,
        ),
      );
    }
    if (wasUp && Date.now() - this.upSince >= STABLE_AFTER_MS) this.attempts = 0;
    const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** this.attempts);
    this.attempts++;
    this.opts.log?.('warn', 'mcp upstream down; restarting', {
      server: this.id,
      why,
      delay_ms: delay,
      attempt: this.attempts,
    });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restarts++;
      this.start().catch(() => {});
    }, delay);
    this.restartTimer.unref();
  }

  /** The tool names of the last listing, when one is cached. */
  cachedToolNames(): string[] {
    return (this.toolsCache ?? []).map((t) => String(t.name));
  }

  /** Every tool the server lists (all pages, bounded), cached until list_changed or a restart. */
  async listTools(timeoutMs: number): Promise<{ tools: JsonObject[] } | { error: RpcErrorObject }> {
    if (this.toolsCache) return { tools: this.toolsCache };
    const all = await this.listAll('tools/list', 'tools', timeoutMs);
    if ('error' in all) return all;
    this.toolsCache = all.items;
    return { tools: all.items };
  }

  /** Pages through a list method (tools/list, prompts/list, resources/list …), bounded. */
  async listAll(
    method: string,
    key: string,
    timeoutMs: number,
  ): Promise<{ items: JsonObject[] } | { error: RpcErrorObject }> {
    const items: JsonObject[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const reply = await this.request(method, cursor === undefined ? undefined : { cursor }, {
        timeoutMs,
      });
      if ('error' in reply) return reply;
      const r = isJsonObject(reply.result) ? reply.result : {};
      const list = Array.isArray(r[key]) ? (r[key] as Json[]) : [];
      for (const item of list)
        if (isJsonObject(item) && items.length < MAX_LIST_ITEMS) items.push(item);
      if (typeof r.nextCursor !== 'string' || r.nextCursor === '') break;
      cursor = r.nextCursor;
    }
    return { items };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.restartTimer);
    clearTimeout(this.sweepTimer);
    this.sweepAt = Infinity;
    for (const entry of [...this.pending.values()])
      entry.resolve(serverError('closed', 'celgate is shutting down'));
    const t = this.transport;
    this.transport = null;
    await t?.close().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
