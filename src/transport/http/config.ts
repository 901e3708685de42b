/**
 * The `http` section of the gateway config file, and `startHttpFromConfig`, the adapter
 * `celgate start` calls. Parsing is pure and throws CelgateError('E_CONFIG') naming the key; the
 * adapter reads the extra CA files, loads (or creates) the interception CA, and maps config +
 * composition-root deps onto `startHttpService`. It never imports the store.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CelgateError } from '../../errors.js';
import type { SecretStore } from '../secrets.js';
import type {
  Decider,
  EventSink,
  EventType,
  GenerationAware,
  Holding,
} from '../../events/index.js';
import type { VsockMode } from '../vsock.js';
import { parseAllowedRanges } from './destination.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
import { parseProxySetting } from './proxy-settings.js';
import type { PipelineDeps, PipelineOptions } from './pipeline.js';
import type { SecureContextSource } from './service.js';
import { parseUpstreamMap } from './upstream.js';
import type { RuleSource } from '../mcp/gateway.js';
import type { RemoteEndpoint } from '../mcp/remote.js';

/** Largest accepted value for any byte limit in the section (guards typos like 1e12). */
export const MAX_CONFIG_BYTES_LIMIT = 1024 * 1024 * 1024;
/** Largest accepted timeout (ms). */
export const MAX_CONFIG_TIMEOUT_MS = 3_600_000;

export interface HttpConfig {
  /** Directory of the interception CA (created on first start). */
  ca_dir: string;
  /** Request body bytes buffered for rules that read `body`. */
  max_body_buffer: number;
  max_header_bytes: number;
  max_header_count: number;
  max_request_target: number;
  /** Open connections per guest on the HTTP port. */
  max_connections: number;
  /** `host[:port]` → `addr:port`. */
  upstream_map: Record<string, string>;
  /** PEM files trusted for upstream TLS in addition to the system roots. */
  extra_ca: string[];
  /** Special-purpose IP ranges (CIDR) a guest's request may still be connected to (destination.ts). */
  allow_private_destinations: string[];
  /** Destination port assumed for intercepted TLS / plain HTTP. */
  https_port: number;
  http_port: number;
  /** Serve requests on the direct path (docs/http.md) unless they need the Node path; false: Node's http.Server for all. */
  direct: boolean;
  /** Offer HTTP/2 (ALPN `h2`) to TLS clients on the vsock port and in proxy tunnels. */
  http2: boolean;
  timeouts: {
    headers_ms: number;
    idle_ms: number;
    keepalive_ms: number;
    handshake_ms: number;
    upstream_ms: number;
  };
  /** Explicit proxy listen address (loopback `host:port`), or null when off (docs/proxy.md). */
  proxy: string | null;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(source: string, key: string, message: string): never {
  throw new CelgateError('E_CONFIG', `${source}: ${key}: ${message}`, {
    details: { file: source, key },
  });
}

function int(source: string, key: string, v: unknown, fallback: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
    fail(source, key, `must be an integer 1..${max}`);
  return v;
}

function checkKeys(source: string, prefix: string, o: Obj, known: string[]): void {
  for (const k of Object.keys(o))
    if (!known.includes(k))
      fail(source, `${prefix}.${k}`, `unknown key; known: ${known.join(', ')}`);
}

const TOP_KEYS = [
  'ca_dir',
  'max_body_buffer',
  'max_header_bytes',
  'max_header_count',
  'max_request_target',
  'max_connections',
  'upstream_map',
  'extra_ca',
  'allow_private_destinations',
  'https_port',
  'http_port',
  'direct',
  'http2',
  'timeouts',
  'proxy',
];
const TIMEOUT_KEYS = ['headers_ms', 'idle_ms', 'keepalive_ms', 'handshake_ms', 'upstream_ms'];

/** Parses the `http:` mapping (absent → defaults). */
export function parseHttpConfig(raw: unknown, source = '<defaults>'): HttpConfig {
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw)) fail(source, 'http', 'must be a mapping');
  checkKeys(source, 'http', raw, TOP_KEYS);
  const t = raw.timeouts ?? {};
  if (!isObj(t)) fail(source, 'http.timeouts', 'must be a mapping');
  checkKeys(source, 'http.timeouts', t, TIMEOUT_KEYS);
  const d = DEFAULT_HTTP_LIMITS;
  let map: Record<string, string> = {};
  if (raw.upstream_map !== undefined && raw.upstream_map !== null) {
    const m = raw.upstream_map;
    if (Array.isArray(m) && m.every((x) => typeof x === 'string')) {
      map = Object.fromEntries(
        m.map((e: string) => [
          e.slice(0, Math.max(0, e.indexOf('='))),
          e.slice(e.indexOf('=') + 1),
        ]),
      );
      if (m.some((e: string) => !e.includes('=')))
        fail(source, 'http.upstream_map', 'list entries must be "host[:port]=addr:port"');
    } else if (isObj(m) && Object.values(m).every((x) => typeof x === 'string')) {
      map = m as Record<string, string>;
    } else
      fail(
        source,
        'http.upstream_map',
        'must be a mapping host[:port] → addr:port, or a list of "host[:port]=addr:port"',
      );
    const parsed = parseUpstreamMap(map);
    if (!parsed.ok)
      fail(source, 'http.upstream_map', parsed.issues.map((i) => i.message).join('; '));
  }
  let extra: string[] = [];
  if (raw.extra_ca !== undefined && raw.extra_ca !== null) {
    const e = typeof raw.extra_ca === 'string' ? [raw.extra_ca] : raw.extra_ca;
    if (!Array.isArray(e) || !e.every((x) => typeof x === 'string' && x !== ''))
      fail(source, 'http.extra_ca', 'must be a list of PEM file paths');
    extra = e as string[];
  }
  let allowPrivate: string[] = [];
  if (raw.allow_private_destinations !== undefined && raw.allow_private_destinations !== null) {
    const a = raw.allow_private_destinations;
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string'))
      fail(
        source,
        'http.allow_private_destinations',
        'must be a list of IP ranges like "10.20.0.0/16"',
      );
    const parsed = parseAllowedRanges(a as string[]);
    if (!parsed.ok)
      fail(
        source,
        'http.allow_private_destinations',
        parsed.issues.map((i) => `${i.path} ${i.message}`).join('; '),
      );
    allowPrivate = a as string[];
  }
  const direct = raw.direct ?? true;
  if (typeof direct !== 'boolean') fail(source, 'http.direct', 'must be true or false');
  const http2 = raw.http2 ?? true;
  if (typeof http2 !== 'boolean') fail(source, 'http.http2', 'must be true or false');
  const ca = raw.ca_dir ?? 'certs';
  if (typeof ca !== 'string' || ca === '') fail(source, 'http.ca_dir', 'must be a non-empty path');
  return {
    ca_dir: ca,
    max_body_buffer: int(
      source,
      'http.max_body_buffer',
      raw.max_body_buffer,
      d.maxBodyBuffer,
      MAX_CONFIG_BYTES_LIMIT,
    ),
    max_header_bytes: int(
      source,
      'http.max_header_bytes',
      raw.max_header_bytes,
      d.maxHeaderBytes,
      1024 * 1024,
    ),
    max_header_count: int(
      source,
      'http.max_header_count',
      raw.max_header_count,
      d.maxHeaderCount,
      10_000,
    ),
    max_request_target: int(
      source,
      'http.max_request_target',
      raw.max_request_target,
      d.maxRequestTarget,
      1024 * 1024,
    ),
    max_connections: int(
      source,
      'http.max_connections',
      raw.max_connections,
      d.maxConnections,
      1_000_000,
    ),
    upstream_map: map,
    extra_ca: extra,
    allow_private_destinations: allowPrivate,
    https_port: int(source, 'http.https_port', raw.https_port, 443, 65535),
    http_port: int(source, 'http.http_port', raw.http_port, 80, 65535),
    direct,
    http2,
    proxy: parseProxySetting(raw.proxy, source),
    timeouts: {
      headers_ms: int(
        source,
        'http.timeouts.headers_ms',
        t.headers_ms,
        d.headersTimeoutMs,
        MAX_CONFIG_TIMEOUT_MS,
      ),
      idle_ms: int(
        source,
        'http.timeouts.idle_ms',
        t.idle_ms,
        d.idleTimeoutMs,
        MAX_CONFIG_TIMEOUT_MS,
      ),
      keepalive_ms: int(
        source,
        'http.timeouts.keepalive_ms',
        t.keepalive_ms,
        d.keepAliveTimeoutMs,
        MAX_CONFIG_TIMEOUT_MS,
      ),
      handshake_ms: int(
        source,
        'http.timeouts.handshake_ms',
        t.handshake_ms,
        d.handshakeTimeoutMs,
        MAX_CONFIG_TIMEOUT_MS,
      ),
      upstream_ms: int(
        source,
        'http.timeouts.upstream_ms',
        t.upstream_ms,
        d.upstreamTimeoutMs,
        MAX_CONFIG_TIMEOUT_MS,
      ),
    },
  };
}

export function limitsFromConfig(c: HttpConfig): HttpLimits {
  return {
    maxHeaderBytes: c.max_header_bytes,
    maxHeaderCount: c.max_header_count,
    maxRequestTarget: c.max_request_target,
    maxBodyBuffer: c.max_body_buffer,
    headersTimeoutMs: c.timeouts.headers_ms,
    idleTimeoutMs: c.timeouts.idle_ms,
    keepAliveTimeoutMs: c.timeouts.keepalive_ms,
    handshakeTimeoutMs: c.timeouts.handshake_ms,
    maxConnections: c.max_connections,
    upstreamTimeoutMs: c.timeouts.upstream_ms,
  };
}

export interface HttpStartConfig extends PipelineStartConfig {
  vsock: { mode: VsockMode; host: string; uds_base: string | null; ports: { http: number } };
}

/** Reads PEM files; a missing or non-PEM file is an E_CONFIG naming it. */
export function readExtraCa(paths: readonly string[], source = '<defaults>'): string[] {
  return paths.map((p) => {
    let text: string;
    try {
      text = readFileSync(resolve(p), 'utf8');
    } catch (err) {
      throw new CelgateError(
        'E_CONFIG',
        `${source}: http.extra_ca: cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { cause: err },
      );
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----'))
      throw new CelgateError('E_CONFIG', `${source}: http.extra_ca: ${p} holds no PEM certificate`);
    return text;
  });
}

/** A started HTTP front end, in the shape of the gateway's Service (src/gateway/service.ts). */
export interface StartedFrontEnd {
  name: string;
  addresses: Record<string, string>;
  warnings: string[];
  close(): Promise<void>;
}

/** What a front end's pipeline is started with, besides its own listener settings. */
export interface PipelineStartConfig {
  session_id: string;
  profile: string;
  http: HttpConfig;
  /** `mcp.remote` (src/transport/mcp/config.ts): endpoints always judged as MCP over HTTPS. */
  mcp?: { remote: readonly RemoteEndpoint[] };
  /** The config file the values came from (named in errors). */
  source?: string;
}

export interface PipelineStartDeps {
  decider: Decider;
  engine?: { needsBody(type: EventType): boolean };
  sink: EventSink;
  /** Shared by the vsock HTTP service and the explicit proxy (one secret catalog). */
  secrets?: SecretStore;
  /** The rule set, for hiding tools in remote MCP tools/list results. */
  rules?: RuleSource;
}

/**
 * The pipeline options and deps both front ends (the vsock service, the explicit proxy) take from
 * the `http` section, so both enforce the same bounds with the same decider.
 */
export function pipelineFromConfig(
  config: PipelineStartConfig,
  deps: PipelineStartDeps,
): { options: PipelineOptions; deps: Omit<PipelineDeps, 'certs'> } {
  const map = parseUpstreamMap(config.http.upstream_map);
  if (!map.ok)
    throw new CelgateError(
      'E_CONFIG',
      `http.upstream_map: ${map.issues.map((i) => i.message).join('; ')}`,
    );
  const engine = deps.engine;
  const inner = deps.decider as GenerationAware & Holding;
  const decider = {
    decide: inner.decide.bind(inner),
    ...(inner.generation === undefined ? {} : { generation: inner.generation.bind(inner) }),
    ...(engine === undefined ? {} : { needsBody: (t: EventType) => engine.needsBody(t) }),
    // A held `ask` (docs/approvals.md) goes through the same decider.
    ...(inner.hold === undefined ? {} : { hold: inner.hold }),
    ...(inner.mayAsk === undefined ? {} : { mayAsk: inner.mayAsk }),
  };
  return {
    options: {
      limits: limitsFromConfig(config.http),
      upstreamMap: map.value,
      extraCa: readExtraCa(config.http.extra_ca, config.source),
      allowPrivateDestinations: config.http.allow_private_destinations,
      direct: config.http.direct,
      http2: config.http.http2,
      ...(deps.secrets === undefined ? {} : { secrets: deps.secrets }),
      mcp: { remote: config.mcp?.remote ?? [], rules: deps.rules },
    },
    deps: {
      decider,
      sink: deps.sink,
      origin: { session_id: config.session_id, profile_id: config.profile },
    },
  };
}

export async function startHttpFromConfig(
  config: HttpStartConfig,
  deps: PipelineStartDeps & { certs?: SecureContextSource },
): Promise<StartedFrontEnd> {
  const pipeline = pipelineFromConfig(config, deps);
  // Loaded here, not at the top: parsing a config must not load the HTTP stack (src/gateway/config.ts).
  const [{ startHttpService }, { CertificateAuthority, LeafCache }] = await Promise.all([
    import('./service.js'),
    import('../../certs/index.js'),
  ]);
  const certs =
    deps.certs ??
    new LeafCache(await CertificateAuthority.loadOrCreate(resolve(config.http.ca_dir)));
  const svc = await startHttpService(
    {
      ...pipeline.options,
      vsock: {
        mode: config.vsock.mode,
        host: config.vsock.host,
        port: config.vsock.ports.http,
        ...(config.vsock.uds_base !== null ? { udsBase: config.vsock.uds_base } : {}),
      },
      httpsPort: config.http.https_port,
      httpPort: config.http.http_port,
    },
    { ...pipeline.deps, certs },
  );
  return {
    name: 'http',
    addresses: svc.addresses,
    warnings: svc.warnings,
    close: () => svc.close(),
  };
}
