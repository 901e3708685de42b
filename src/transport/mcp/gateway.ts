/**
 * The MCP gateway core: the set of upstream servers, the decider and sink, aggregation of
 * tools/resources/prompts across servers (namespaced `server__name`), routing of resource URIs,
 * and the tools/list hiding analysis cache. Sessions (session.ts) use it; it owns no sockets of the
 * guest side. It never decides: every event goes to `deps.decider`.
 */
import type { EventOrigin } from '../../events/build.js';
import type { Decision, Decider, Holding } from '../../events/decision.js';
import type { EventSink } from '../../events/sink.js';
import type { SecurityEvent } from '../../events/types.js';
import { HiddenTools, type RuleView } from './hidden.js';
import { namespaced } from './facts.js';
import { isJsonObject, type JsonObject, type RpcErrorObject } from './jsonrpc.js';
import { Upstream, type UpstreamConfig } from './upstream.js';

export {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  MAX_UPSTREAMS,
  checkUpstreams,
} from './settings.js';
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS, checkUpstreams } from './settings.js';
import { decideHeld, decideSafely, recordSafely } from '../../events/enforce.js';
/** Most URIs remembered for routing resources/read to the server that listed them. */
export const MAX_ROUTED_URIS = 10_000;

export type McpLog = (
  level: 'info' | 'warn' | 'debug',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/** Where the tools/list analysis reads rules: a RuleRegistry fits (`generation`, `list()`). */
export interface RuleSource {
  readonly generation: number;
  list(): readonly RuleView[];
  /** The profile's default action, when known (a RuleRegistry has it). */
  readonly defaultAction?: 'allow' | 'block';
  /** When present, rule changes that hide or reveal a listed tool send tools/list_changed. */
  onChange?(listener: () => void): () => void;
}

export interface McpGatewayOptions {
  upstreams: UpstreamConfig[];
  /** Per-call bound on an upstream request (-32000 on expiry). */
  callTimeoutMs?: number;
  startTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** session_id, vm_id, profile_id of every event; process_name comes from each stream. */
  origin: Omit<EventOrigin, 'process_name'>;
}

export interface McpGatewayDeps {
  decider: Decider & Holding;
  sink: EventSink;
  rules?: RuleSource;
  log?: McpLog;
}

export class McpGateway {
  readonly upstreams = new Map<string, Upstream>();
  readonly callTimeoutMs: number;
  readonly startTimeoutMs: number;
  private readonly sessions = new Set<{
    notify(method: string, params?: JsonObject): void;
    close(): void;
  }>();
  private readonly uriRoutes = new Map<string, string>();
  private readonly templateRoutes: { prefix: string; server: string }[] = [];
  private hidden: { generation: number; analysis: HiddenTools } | null = null;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    readonly options: McpGatewayOptions,
    readonly deps: McpGatewayDeps,
  ) {
    checkUpstreams(options.upstreams);
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    for (const cfg of options.upstreams) {
      const up = new Upstream(cfg, {
        startTimeoutMs: this.startTimeoutMs,
        backoffInitialMs: options.backoffInitialMs ?? 200,
        backoffMaxMs: options.backoffMaxMs ?? 10_000,
        onNotification: (u, method, params) => this.onUpstreamNotification(u, method, params),
        ...(deps.log ? { log: deps.log } : {}),
      });
      this.upstreams.set(cfg.id, up);
    }
    this.unsubscribe = deps.rules?.onChange?.(() => this.onRulesChanged());
  }

  /** Tells sessions to re-list when a rule change hides or reveals a tool they were shown. */
  private onRulesChanged(): void {
    const shown = this.hidden?.analysis; // the analysis the last tools/list used
    if (!shown) return;
    const listed = [...this.upstreams.values()].flatMap((u) =>
      u.cachedToolNames().map((t) => [u.id, t] as const),
    );
    const changed = listed.some(([s, t]) => shown.isHidden(s, t) !== this.isHidden(s, t));
    if (changed) for (const s of this.sessions) s.notify('notifications/tools/list_changed');
  }

  /** Starts every upstream in parallel; resolves when each is ready or has failed (and is retrying). */
  async start(): Promise<void> {
    await Promise.all([...this.upstreams.values()].map((u) => u.start().catch(() => {})));
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    // Sessions still open write their batched records now (before the ledger closes after us).
    for (const s of [...this.sessions]) s.close();
    await Promise.all([...this.upstreams.values()].map((u) => u.close()));
  }

  register(session: {
    notify(method: string, params?: JsonObject): void;
    close(): void;
  }): () => void {
    this.sessions.add(session);
    return () => this.sessions.delete(session);
  }

  /**
   * Decides one event; a decider that throws is an engine error, so the event fails closed.
   * `record` false leaves `sink.decision` to the caller (see McpSession.decide).
   */
  decide(event: SecurityEvent, record = true): Decision {
    const decision = decideSafely(this.deps, event);
    return record ? recordSafely(this.deps, event, decision) : decision;
  }

  /**
   * Decides a request an `ask` rule may hold for an approver (docs/approvals.md): a Decision now, or
   * a promise of one while held. Not recorded (see McpSession.decideRequest).
   */
  decideHeld(event: SecurityEvent): Decision | Promise<Decision> {
    return decideHeld(this.deps, event);
  }

  /** Records a decision made with `record` false; an allow the ledger refuses comes back as a fail-closed error. */
  record(event: SecurityEvent, decision: Decision): Decision {
    return recordSafely(this.deps, event, decision);
  }

  /** Would every tools/call of this tool be blocked? (static analysis; see hidden.ts). */
  isHidden(server: string, tool: string): boolean {
    const src = this.deps.rules;
    if (!src) return false;
    if (!this.hidden || this.hidden.generation !== src.generation) {
      this.hidden = {
        generation: src.generation,
        analysis: new HiddenTools(src.list(), src.defaultAction ?? 'allow'),
      };
    }
    return this.hidden.analysis.isHidden(server, tool);
  }

  /** tools/list across every ready server, namespaced, minus hidden tools. */
  async listTools(): Promise<JsonObject[]> {
    const lists = await Promise.all(
      [...this.upstreams.values()].map(async (u) => {
        if (u.state !== 'ready' || !isJsonObject(u.capabilities.tools)) return [];
        const r = await u.listTools(this.callTimeoutMs);
        if ('error' in r) {
          this.deps.log?.('warn', 'mcp tools/list failed upstream', {
            server: u.id,
            error: r.error.message,
          });
          return [];
        }
        return r.tools
          .filter((t) => typeof t.name === 'string' && !this.isHidden(u.id, t.name))
          .map((t) => ({ ...t, name: namespaced(u.id, t.name as string) }));
      }),
    );
    return lists.flat();
  }

  /** Aggregates a list method over servers advertising `capability`; `rename` namespaces names. */
  async listAll(
    method: string,
    key: string,
    capability: string,
    rename: boolean,
  ): Promise<JsonObject[] | RpcErrorObject> {
    const lists = await Promise.all(
      [...this.upstreams.values()].map(async (u) => {
        if (u.state !== 'ready' || !isJsonObject(u.capabilities[capability])) return [];
        const r = await u.listAll(method, key, this.callTimeoutMs);
        if ('error' in r) {
          this.deps.log?.('warn', `mcp ${method} failed upstream`, {
            server: u.id,
            error: r.error.message,
          });
          return [];
        }
        if (key === 'resources')
          for (const item of r.items)
            if (typeof item.uri === 'string') this.routeUri(item.uri, u.id);
        if (key === 'resourceTemplates')
          for (const item of r.items)
            if (typeof item.uriTemplate === 'string') this.routeTemplate(item.uriTemplate, u.id);
        return rename
          ? r.items.map((p) => ({ ...p, name: namespaced(u.id, String(p.name)) }))
          : r.items;
      }),
    );
    return lists.flat();
  }

  private routeUri(uri: string, server: string): void {
    if (!this.uriRoutes.has(uri) && this.uriRoutes.size >= MAX_ROUTED_URIS) return;
    this.uriRoutes.set(uri, server);
  }

  private routeTemplate(template: string, server: string): void {
    const cut = template.indexOf('{');
    const prefix = cut === -1 ? template : template.slice(0, cut);
    if (prefix === '' || this.templateRoutes.some((t) => t.prefix === prefix)) return;
    if (this.templateRoutes.length < MAX_ROUTED_URIS) this.templateRoutes.push({ prefix, server });
  }

  /** Which server owns a resource URI: listed URIs, then template prefixes, then the only resource server. */
  serverForUri(uri: string): string | null {
    const listed = this.uriRoutes.get(uri);
    if (listed !== undefined) return listed;
    let best: { prefix: string; server: string } | null = null;
    for (const t of this.templateRoutes)
      if (uri.startsWith(t.prefix) && (!best || t.prefix.length > best.prefix.length)) best = t;
    if (best) return best.server;
    const withResources = [...this.upstreams.values()].filter((u) =>
      isJsonObject(u.capabilities.resources),
    );
    return withResources.length === 1 ? withResources[0]!.id : null;
  }

  /** Servers whose capabilities advertise `key` (e.g. "completions", "logging"). */
  serversWith(key: string): Upstream[] {
    return [...this.upstreams.values()].filter(
      (u) => u.state === 'ready' && isJsonObject(u.capabilities[key]),
    );
  }

  /** Capabilities celgate advertises to the guest: the union of what its servers offer. */
  capabilities(): JsonObject {
    const caps: JsonObject = {
      tools: { listChanged: true },
      resources: { listChanged: true },
      prompts: { listChanged: true },
    };
    const resourcesSubscribe = [...this.upstreams.values()].some(
      (u) => isJsonObject(u.capabilities.resources) && u.capabilities.resources.subscribe === true,
    );
    if (resourcesSubscribe) caps.resources = { listChanged: true, subscribe: true };
    if ([...this.upstreams.values()].some((u) => isJsonObject(u.capabilities.completions)))
      caps.completions = {};
    if ([...this.upstreams.values()].some((u) => isJsonObject(u.capabilities.logging)))
      caps.logging = {};
    // Task-augmented tool calls: ids are celgate's, scoped to the session; results are judged (session.ts).
    if ([...this.upstreams.values()].some((u) => isJsonObject(u.capabilities.tasks)))
      caps.tasks = { list: {}, cancel: {}, requests: { tools: { call: {} } } };
    return caps;
  }

  private onUpstreamNotification(
    u: Upstream,
    method: string,
    params: JsonObject | undefined,
  ): void {
    const forward = [
      'notifications/tools/list_changed',
      'notifications/resources/list_changed',
      'notifications/prompts/list_changed',
      'notifications/resources/updated',
    ];
    if (!forward.includes(method)) {
      this.deps.log?.('debug', 'mcp upstream notification dropped', { server: u.id, method });
      return;
    }
    for (const s of this.sessions) s.notify(method, params);
  }
}
