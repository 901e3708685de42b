/**
 * The `mcp` section of the gateway config file, and the adapter `startMcpFromConfig` that
 * `celgate start` calls. Parsing is pure and throws CelgateError('E_CONFIG') naming the key; the
 * adapter only maps config + composition-root deps onto `startMcpService`.
 */
import { CelgateError } from '../../errors.js';
import type { Decider } from '../../events/decision.js';
import type { EventSink } from '../../events/sink.js';
import type { McpLog, RuleSource } from './gateway.js';
import { checkUpstreams, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS } from './settings.js';
import type { UpstreamConfig } from './upstream.js';
import type { RemoteEndpoint } from './remote.js';

/** Longest per-call timeout a config may ask for. */
export const MAX_CALL_TIMEOUT_MS = 3_600_000;

export interface McpConfig {
  /** Upstream MCP servers: `{id, command, args?, env?, cwd?}` (stdio) or `{id, url, headers?}`. */
  servers: UpstreamConfig[];
  call_timeout_ms: number;
  start_timeout_ms: number;
  /** Optional NDJSON listener (Unix socket path or loopback HOST:PORT), or null. */
  ndjson: string | null;
  /** Remote MCP endpoints reached over HTTPS whose exchanges are always judged as MCP (docs/mcp.md). */
  remote: RemoteEndpoint[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(source: string, key: string, message: string): never {
  throw new CelgateError('E_CONFIG', `${source}: ${key}: ${message}`, {
    details: { file: source, key },
  });
}

function strings(source: string, key: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    fail(source, key, 'must be a list of strings');
  return v as string[];
}

function stringMap(source: string, key: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === 'string'))
    fail(source, key, 'must be a mapping of strings');
  return v as Record<string, string>;
}

function timeout(source: string, key: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_CALL_TIMEOUT_MS)
    fail(source, key, `must be an integer 1..${MAX_CALL_TIMEOUT_MS} (ms)`);
  return v;
}

const SERVER_KEYS = ['id', 'command', 'args', 'env', 'cwd', 'url', 'headers'];
const TOP_KEYS = ['servers', 'call_timeout_ms', 'start_timeout_ms', 'ndjson', 'remote'];
const REMOTE_KEYS = ['host', 'path'];
/** A host name as rules see it: lower-case labels, no trailing dot (src/transport/hostname.ts). */
const REMOTE_HOST =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Parses `mcp.remote`: a list of `{host, path}` (path a prefix starting with "/", default "/"). */
function parseRemote(source: string, v: unknown): RemoteEndpoint[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(source, 'mcp.remote', 'must be a list of {host, path}');
  return v.map((e, i): RemoteEndpoint => {
    const at = `mcp.remote[${i}]`;
    if (!isObj(e)) fail(source, at, 'must be a mapping with host and path');
    for (const k of Object.keys(e))
      if (!REMOTE_KEYS.includes(k))
        fail(source, `${at}.${k}`, `unknown key; known: ${REMOTE_KEYS.join(', ')}`);
    if (typeof e.host !== 'string' || !REMOTE_HOST.test(e.host))
      fail(source, `${at}.host`, 'must be a lower-case host name (no port, no trailing dot)');
    const path = e.path ?? '/';
    if (typeof path !== 'string' || !path.startsWith('/') || /[?#\s]/.test(path))
      fail(source, `${at}.path`, 'must be a path starting with "/" (no query)');
    return { host: e.host, path };
  });
}

/** Parses the `mcp:` mapping (absent → no servers, defaults). */
export function parseMcpConfig(raw: unknown, source = '<defaults>'): McpConfig {
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw)) fail(source, 'mcp', 'must be a mapping');
  for (const k of Object.keys(raw))
    if (!TOP_KEYS.includes(k))
      fail(source, `mcp.${k}`, `unknown key; known: ${TOP_KEYS.join(', ')}`);
  const list = raw.servers ?? [];
  if (!Array.isArray(list)) fail(source, 'mcp.servers', 'must be a list');
  const servers = list.map((s, i): UpstreamConfig => {
    const at = `mcp.servers[${i}]`;
    if (!isObj(s)) fail(source, at, 'must be a mapping');
    for (const k of Object.keys(s))
      if (!SERVER_KEYS.includes(k))
        fail(source, `${at}.${k}`, `unknown key; known: ${SERVER_KEYS.join(', ')}`);
    for (const k of ['id', 'command', 'cwd', 'url'] as const) {
      if (s[k] !== undefined && (typeof s[k] !== 'string' || s[k] === ''))
        fail(source, `${at}.${k}`, 'must be a non-empty string');
    }
    const out: UpstreamConfig = { id: s.id as string };
    if (s.command !== undefined) out.command = s.command as string;
    if (s.url !== undefined) out.url = s.url as string;
    if (s.cwd !== undefined) out.cwd = s.cwd as string;
    const args = strings(source, `${at}.args`, s.args);
    if (args) out.args = args;
    const env = stringMap(source, `${at}.env`, s.env);
    if (env) out.env = env;
    const headers = stringMap(source, `${at}.headers`, s.headers);
    if (headers) out.headers = headers;
    return out;
  });
  try {
    checkUpstreams(servers);
  } catch (err) {
    fail(source, 'mcp.servers', (err as Error).message.replace(/^mcp\.servers/, ''));
  }
  const ndjson = raw.ndjson ?? null;
  if (ndjson !== null && (typeof ndjson !== 'string' || ndjson === ''))
    fail(source, 'mcp.ndjson', 'must be a socket path, "127.0.0.1:PORT" or null');
  return {
    servers,
    call_timeout_ms: timeout(
      source,
      'mcp.call_timeout_ms',
      raw.call_timeout_ms,
      DEFAULT_CALL_TIMEOUT_MS,
    ),
    start_timeout_ms: timeout(
      source,
      'mcp.start_timeout_ms',
      raw.start_timeout_ms,
      DEFAULT_START_TIMEOUT_MS,
    ),
    ndjson: ndjson as string | null,
    remote: parseRemote(source, raw.remote),
  };
}

/** The parts of the gateway config and deps the MCP service needs (structural: no cli import). */
export interface McpStartConfig {
  session_id: string;
  profile: string;
  vsock: { mode: 'tcp' | 'uds'; host: string; uds_base: string | null; ports: { mcp: number } };
  mcp: McpConfig;
}

interface PinoLike {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export async function startMcpFromConfig(
  config: McpStartConfig,
  deps: { decider: Decider; sink: EventSink; registry: RuleSource; logger: PinoLike },
): Promise<{
  name: string;
  addresses: Record<string, string>;
  routes: { method: 'GET'; path: string; handler(): { json: unknown } }[];
  close(): Promise<void>;
}> {
  const log: McpLog = (level, msg, fields = {}) =>
    deps.logger[level]({ component: 'mcp', ...fields }, msg);
  // Loaded here, not at the top: parsing a config must not load the MCP SDK (src/gateway/config.ts).
  const { startMcpService } = await import('./service.js');
  const svc = await startMcpService(
    {
      upstreams: config.mcp.servers,
      callTimeoutMs: config.mcp.call_timeout_ms,
      startTimeoutMs: config.mcp.start_timeout_ms,
      origin: { session_id: config.session_id, profile_id: config.profile },
      vsock: {
        mode: config.vsock.mode,
        host: config.vsock.host,
        port: config.vsock.ports.mcp,
        ...(config.vsock.uds_base !== null ? { udsBase: config.vsock.uds_base } : {}),
      },
      ndjson: config.mcp.ndjson,
    },
    { decider: deps.decider, sink: deps.sink, rules: deps.registry, log },
  );
  // Admin API (control plane only, never reachable from the guest): upstream state for operators.
  const status = () => ({
    json: {
      servers: [...svc.gateway.upstreams.values()].map((u) => ({
        id: u.id,
        transport: u.config.url !== undefined ? 'http' : 'stdio',
        state: u.state,
        restarts: u.restarts,
        server_info: u.serverInfo,
        tools_cached: u.cachedToolNames().length,
      })),
      call_timeout_ms: svc.gateway.callTimeoutMs,
      rejected_streams: { ...svc.rejected },
    },
  });
  return {
    name: 'mcp',
    addresses: svc.addresses,
    routes: [{ method: 'GET', path: '/v1/mcp/servers', handler: status }],
    close: () => svc.close(),
  };
}
