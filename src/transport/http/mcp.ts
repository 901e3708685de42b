/**
 * MCP over HTTPS in the HTTP pipeline, the request half: after an exchange's `http.request` was
 * allowed, every JSON-RPC message of its body becomes an `mcp.request` event decided and recorded
 * through the same enforcement primitive as the vsock MCP port (Streamable HTTP and the older
 * HTTP+SSE transport alike). Denials are JSON-RPC errors in the transport's own framing (a JSON
 * body, or an SSE `message` event on the session's stream). The answer half: mcp-relay.ts.
 *
 * Owns: MCP recognition on HTTP exchanges, request enforcement, the per-service memory of calls
 * awaiting an answer, of open SSE streams and of the tools each host listed last, the hidden-tool
 * analysis cache, and `notifications/tools/list_changed` on the servers' streams when a rule change
 * hides or reveals a listed tool. Must not: decide itself, or let a message upstream without its
 * decision. Pure parts: src/transport/mcp/remote.ts and sse.ts.
 */
import type { ServerResponse } from 'node:http';
import {
  mcpRequestEvent,
  type Decision,
  type EventOrigin,
  type EventSink,
  type HeaderMap,
  type McpRequestFacts,
  type SecurityEvent,
} from '../../events/index.js';
import { decideAndRecordHeld, type Enforcement } from '../../events/enforce.js';
import { argsDigest, argsPreview, denialError, mcpCallRow } from '../mcp/facts.js';
import type { RuleSource } from '../mcp/gateway.js';
import { HiddenTools } from '../mcp/hidden.js';
import {
  RpcCode,
  errorResponse,
  type Json,
  type JsonObject,
  type RpcErrorObject,
  type RpcMessage,
} from '../mcp/jsonrpc.js';
import {
  classifyBody,
  isForcedRemote,
  isJsonType,
  mayCarryMcp,
  mentionsJsonRpc,
  requestFacts,
  sessionKey,
  type PendingCall,
  type RemoteEndpoint,
} from '../mcp/remote.js';
import { encodeSseEvent } from '../mcp/sse.js';
import type { SecretStore } from '../secrets.js';

/** Most calls remembered across a service while they await an answer (oldest forgotten first). */
export const MAX_PENDING_CALLS = 4096;
/** Largest JSON answer held while its messages are judged. */
export const MAX_MCP_JSON_BYTES = 4 * 1024 * 1024;
/** Hosts whose last tools/list is remembered for list_changed (oldest forgotten first). */
export const MAX_LISTED_HOSTS = 1024;
/** Tool names remembered per host. */
export const MAX_LISTED_TOOLS = 4096;

export interface McpHttpOptions {
  /** `mcp.remote`: endpoints whose exchanges are MCP whatever they look like. */
  remote?: readonly RemoteEndpoint[];
  /** The rule set, for tools/list filtering (hidden.ts); without it nothing is hidden. */
  rules?: RuleSource | undefined;
}

/** One open SSE stream of the HTTP+SSE transport: where denials for its POSTs are written. */
interface SseStream {
  session: string;
  inject(event: Buffer): void;
}

/** The event celgate writes on a server's stream when the tools it should show changed. */
const TOOLS_CHANGED = encodeSseEvent({
  event: 'message',
  data: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }),
});

/** The tools a host's last tools/list answer named, and which of them were hidden then. */
interface Listed {
  names: readonly string[];
  hidden: ReadonlySet<string>;
}

/** The per-service state MCP over HTTPS needs. */
export class McpHttp {
  private readonly remote: readonly RemoteEndpoint[];
  private readonly pending = new Map<string, PendingCall>();
  private readonly streams = new Map<string, SseStream>();
  private hidden: { generation: number; analysis: HiddenTools } | null = null;
  /** By host (the server id of MCP over HTTPS). */
  private readonly listed = new Map<string, Listed>();
  /** Open server streams (a GET's SSE answer) by host, for the notifications celgate sends. */
  private readonly serverStreams = new Map<string, Set<(event: Buffer) => void>>();
  private readonly unsubscribe: (() => void) | undefined;

  constructor(private readonly options: McpHttpOptions = {}) {
    this.remote = options.remote ?? [];
    this.unsubscribe = options.rules?.onChange?.(() => this.onRulesChanged());
  }

  /** Stops following rule changes (the service is closing). */
  close(): void {
    this.unsubscribe?.();
    this.serverStreams.clear();
    this.listed.clear();
  }

  /** Is this endpoint forced to MCP by `mcp.remote`? */
  forced(host: string, path: string): boolean {
    return this.remote.length > 0 && isForcedRemote(this.remote, host, path);
  }

  /** May this request carry MCP (so its body must be read and its answer judged)? */
  candidate(host: string, path: string, headers: HeaderMap): boolean {
    return mayCarryMcp(
      headers['content-type'] ?? '',
      headers.accept ?? '',
      this.forced(host, path),
    );
  }

  /** For the direct paths: must a request with this head take the judging path? */
  candidateHead(host: string, contentType: string, accept: string): boolean {
    return (
      mayCarryMcp(contentType, accept, false) ||
      (this.remote.length > 0 && this.remote.some((r) => r.host === host))
    );
  }

  isHidden(server: string, tool: string): boolean {
    const src = this.options.rules;
    if (src === undefined) return false;
    if (this.hidden === null || this.hidden.generation !== src.generation)
      this.hidden = {
        generation: src.generation,
        analysis: new HiddenTools(src.list(), src.defaultAction ?? 'allow'),
      };
    return this.hidden.analysis.isHidden(server, tool);
  }

  /**
   * A tools/list answer from `host` named these tools (before hidden ones were taken out). Pages of
   * a paginated listing add up; a tool the server dropped since costs at most one needless notice.
   */
  noteListed(host: string, names: readonly string[]): void {
    const before = this.listed.get(host)?.names ?? [];
    const all = before.length === 0 ? names : [...new Set([...before, ...names])];
    this.setListed(host, all.slice(-MAX_LISTED_TOOLS));
  }

  private setListed(host: string, names: readonly string[]): void {
    this.listed.delete(host);
    this.listed.set(host, { names, hidden: new Set(names.filter((n) => this.isHidden(host, n))) });
    if (this.listed.size > MAX_LISTED_HOSTS) this.listed.delete(this.listed.keys().next().value!);
  }

  /** Registers an open server stream of `host`; returns its unregistration. */
  openServerStream(host: string, write: (event: Buffer) => void): () => void {
    let set = this.serverStreams.get(host);
    if (set === undefined) this.serverStreams.set(host, (set = new Set()));
    set.add(write);
    return () => {
      set.delete(write);
      if (set.size === 0 && this.serverStreams.get(host) === set) this.serverStreams.delete(host);
    };
  }

  /**
   * A rule changed: every host whose last listing would now hide or show a tool differently is
   * told to list again, on each of its open server streams (as the vsock MCP port tells its
   * sessions). A host with no stream open learns it at its next tools/list.
   */
  private onRulesChanged(): void {
    for (const [host, l] of this.listed) {
      const streams = this.serverStreams.get(host);
      if (streams === undefined) continue;
      if (!l.names.some((n) => l.hidden.has(n) !== this.isHidden(host, n))) continue;
      this.setListed(host, l.names);
      for (const write of streams) write(TOOLS_CHANGED);
    }
  }

  remember(key: string, call: PendingCall): void {
    this.pending.delete(key);
    this.pending.set(key, call);
    if (this.pending.size > MAX_PENDING_CALLS)
      this.pending.delete(this.pending.keys().next().value!);
  }

  take(key: string): PendingCall | undefined {
    const c = this.pending.get(key);
    if (c !== undefined) this.pending.delete(key);
    return c;
  }

  stream(key: string): SseStream | undefined {
    return this.streams.get(key);
  }

  openStream(key: string, s: SseStream): () => void {
    this.streams.set(key, s);
    return () => {
      if (this.streams.get(key) === s) this.streams.delete(key);
    };
  }
}

/** What judging a request body leaves for the rest of the exchange. */
export type McpRequestOutcome =
  | { kind: 'opaque' }
  /** The guest has been answered (a refusal, or every message denied); nothing goes upstream. */
  | { kind: 'answered' }
  /** Forward; `body` replaces the buffered body when some messages of a batch were refused. */
  | { kind: 'forward'; exchange: McpExchange; body: Buffer | null };

export interface McpExchangeDeps extends Enforcement {
  mcp: McpHttp;
  secrets?: SecretStore | undefined;
}

/** One MCP exchange (a POST of messages, or a GET opening a stream). */
export class McpExchange {
  /** Calls of this exchange by JSON-RPC id (answers on the same response are found here first). */
  readonly calls = new Map<string, PendingCall>();
  /** Denials to deliver with the answer (a batch of which some messages were refused). */
  denials: JsonObject[] = [];

  constructor(
    readonly deps: McpExchangeDeps,
    readonly origin: EventOrigin,
    readonly host: string,
    /** The session key (remote.ts `sessionKey`); an SSE stream learns it from its `endpoint` event. */
    public session: string,
    /** Request path and query, to resolve an SSE `endpoint` event against. */
    readonly url: string,
    /** A request without a body (a GET): its answer is the server's own stream, not replies. */
    readonly opensStream = false,
  ) {}

  key(id: string): string {
    return `${this.host}\0${this.session}\0${id}`;
  }

  find(id: string): PendingCall | undefined {
    const local = this.calls.get(id);
    if (local !== undefined) {
      this.calls.delete(id);
      this.deps.mcp.take(this.key(id));
      return local;
    }
    return this.deps.mcp.take(this.key(id));
  }
}

export function mcpRow(
  sink: EventSink,
  event: SecurityEvent,
  decision: Decision,
  direction: 'request' | 'response',
  f: { server: string; method: string; tool: string; id: string; args: JsonObject },
  isError: boolean,
  durationMs: number,
): void {
  const row = mcpCallRow(event, decision, {
    direction,
    server: f.server,
    method: f.method,
    tool: f.tool,
    requestId: f.id,
    args: { args_digest: argsDigest(f.args), args_preview: argsPreview(f.args) },
    isError,
    durationMs,
    transport: 'https',
  });
  try {
    sink.mcp(row);
  } catch {
    // The decision row carried the verdict; a protocol row lost to a failing ledger changes nothing enforced.
  }
}

/** A JSON answer with one JSON-RPC error (the refusal of a malformed body). */
function jsonAnswer(res: ServerResponse, status: number, body: Json): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'x-celgate-decision': status === 400 ? 'mcp_malformed' : 'block',
  });
  res.end(text);
}

/**
 * Judges the JSON-RPC messages of an allowed request. `text` is the decoded body (null for a
 * request without one); `complete` false when it was longer than the buffer.
 */
export function judgeMcpRequest(
  deps: McpExchangeDeps,
  origin: EventOrigin,
  req: { host: string; path: string; query: string; headers: HeaderMap; method: string },
  body: { text: string; complete: boolean; encoded: boolean } | null,
  res: ServerResponse,
  setError: (code: string) => void,
): McpRequestOutcome | Promise<McpRequestOutcome> {
  const forced = deps.mcp.forced(req.host, req.path);
  const session = sessionKey(req.headers['mcp-session-id'] ?? '', req.query);
  const url = `${req.path}${req.query === '' ? '' : `?${req.query}`}`;
  const exchange = new McpExchange(deps, origin, req.host, session, url, body === null);
  if (body === null) return { kind: 'forward', exchange, body: null };
  if (!forced && !isJsonType(req.headers['content-type'] ?? '')) return { kind: 'opaque' };
  const refuse = (error: RpcErrorObject): McpRequestOutcome => {
    setError('mcp_malformed');
    jsonAnswer(res, 400, errorResponse(null, error));
    return { kind: 'answered' };
  };
  const claims = forced || mentionsJsonRpc(body.text);
  if (!claims) return { kind: 'opaque' };
  if (body.encoded)
    return refuse({
      code: RpcCode.INVALID_REQUEST,
      message: 'Invalid Request: a JSON-RPC body must not be compressed (Content-Encoding)',
    });
  if (!body.complete)
    return refuse({
      code: RpcCode.INVALID_REQUEST,
      message: 'Invalid Request: the JSON-RPC body is larger than celgate buffers for judging',
    });
  const parsed = classifyBody(body.text, forced);
  if (parsed.kind === 'opaque') return { kind: 'opaque' };
  if (parsed.kind === 'malformed') return refuse(parsed.error);

  // Each request and notification is decided at once; an `ask` rule may hold some of them for an
  // approver (docs/approvals.md), and only then does the exchange wait — for all of them together.
  const judged: JudgedMessage[] = [];
  for (const m of parsed.messages) {
    if (m.type === 'response') judged.push({ message: m }); // an answer to a server's request
    if (m.type !== 'request' && m.type !== 'notification') continue; // classifyBody refused invalid ones
    const id = m.type === 'request' ? String(m.id) : '';
    const facts = requestFacts(req.host, m.method, m.params, id);
    const event = mcpRequestEvent(origin, facts);
    judged.push({ message: m, id, facts, event, decision: decideAndRecordHeld(deps, event) });
  }
  const settle = (): McpRequestOutcome =>
    settleRequest(deps, req.host, url, exchange, parsed.batch, judged, res, setError);
  if (!judged.some((j) => j.decision instanceof Promise)) return settle();
  return Promise.all(
    judged.map(async (j) => {
      if (j.decision instanceof Promise) j.decision = await j.decision;
    }),
  ).then(settle);
}

/** One message of a request body with what judging it gave (an answer to a server request has no event). */
interface JudgedMessage {
  message: Exclude<RpcMessage, { type: 'invalid' }>;
  id?: string;
  facts?: McpRequestFacts;
  event?: SecurityEvent;
  decision?: Decision | Promise<Decision>;
}

/** Once every message has its decision: record, keep the allowed, answer the refused. */
function settleRequest(
  deps: McpExchangeDeps,
  host: string,
  url: string,
  exchange: McpExchange,
  batch: boolean,
  judged: readonly JudgedMessage[],
  res: ServerResponse,
  setError: (code: string) => void,
): McpRequestOutcome {
  const stream = deps.mcp.stream(`${host}\0${url}`);
  const kept: JsonObject[] = [];
  const denials: JsonObject[] = [];
  for (const j of judged) {
    const m = j.message;
    if (j.event === undefined || j.facts === undefined) {
      kept.push(m.raw);
      continue;
    }
    const decision = j.decision as Decision;
    const id = j.id ?? '';
    const facts = j.facts;
    const row = {
      server: host,
      method: facts.method,
      tool: facts.tool_name,
      id,
      args: facts.arguments as JsonObject,
    };
    mcpRow(deps.sink, j.event, decision, 'request', row, decision.action !== 'allow', 0);
    if (decision.action === 'allow') {
      kept.push(m.raw);
      if (m.type === 'request') {
        const call = { method: facts.method, tool: facts.tool_name, started: performance.now() };
        exchange.calls.set(id, call);
        deps.mcp.remember(exchange.key(id), call);
      }
    } else if (m.type === 'request') {
      denials.push(errorResponse(m.id, denialError(decision, j.event.common.event_id, 'request')));
    }
  }
  const allKept = kept.length === judged.length;
  if (allKept) return { kind: 'forward', exchange, body: null };
  // Some messages were refused. On the HTTP+SSE transport answers travel on the stream.
  if (stream !== undefined) {
    for (const d of denials)
      stream.inject(encodeSseEvent({ event: 'message', data: JSON.stringify(d) }));
  } else exchange.denials = denials;
  if (kept.length === 0) {
    setError('mcp_blocked');
    if (stream !== undefined || denials.length === 0) {
      res.writeHead(202, { 'content-type': 'text/plain' });
      res.end('Accepted');
    } else jsonAnswer(res, 200, batch ? denials : denials[0]!);
    return { kind: 'answered' };
  }
  const next = Buffer.from(JSON.stringify(batch ? kept : kept[0]));
  return { kind: 'forward', exchange, body: next };
}
