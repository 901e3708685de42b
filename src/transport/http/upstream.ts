/**
 * Where and how allowed requests go upstream: the upstream map (`host[:port]=addr:port`, for tests
 * and private deployments) and the connector every connection of the one upstream client
 * (upstream-pool.ts) is made with (`connect`: the destination guard in its lookup, SNI, TLS
 * sessions). TLS verification uses the system roots plus configured extra CAs and always checks
 * the certificate against the host the guest asked for.
 *
 * Owns: upstream connection setup. Must not: decide, or forward anything not already allowed.
 */
import net from 'node:net';
import tls from 'node:tls';
import { CelgateError, type Issue, type Validated } from '../../errors.js';
import { DestinationGuard } from './destination.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Keys are `host:port` or `host` (any port); values are where to connect instead. */
export type UpstreamMap = ReadonlyMap<string, HostPort>;

const HOST_RE = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)$/i;

function splitHostPort(text: string): { host: string; port: number | null } | null {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (m === null || !HOST_RE.test(m[1]!)) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { host: m[1]!.replace(/^\[|\]$/g, '').toLowerCase(), port };
}

/** Parses upstream map entries (`"api.example.com:443=127.0.0.1:8443"` or an object of the same). */
export function parseUpstreamMap(
  input: readonly string[] | Record<string, string>,
): Validated<UpstreamMap> {
  const pairs: [string, string, string][] = Array.isArray(input)
    ? input.map((e, i) => {
        const at = e.indexOf('=');
        return [e.slice(0, at < 0 ? e.length : at), at < 0 ? '' : e.slice(at + 1), `[${i}]`];
      })
    : Object.entries(input).map(([k, v]) => [k, String(v), `.${k}`]);
  const issues: Issue[] = [];
  const map = new Map<string, HostPort>();
  for (const [from, to, path] of pairs) {
    const f = splitHostPort(from);
    const t = splitHostPort(to);
    if (f === null)
      issues.push({ path: `upstream_map${path}`, message: `"${from}" is not host or host:port` });
    if (t === null || t.port === null)
      issues.push({ path: `upstream_map${path}`, message: `"${to}" is not addr:port` });
    if (f !== null && t !== null && t.port !== null) {
      map.set(f.port === null ? f.host : `${f.host}:${f.port}`, { host: t.host, port: t.port });
    }
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: map };
}

/** The map's entry for `host:port` (or for `host`, any port), if any. */
export function mappedUpstream(map: UpstreamMap, host: string, port: number): HostPort | undefined {
  return map.get(`${host}:${port}`) ?? map.get(host);
}

export function resolveUpstream(map: UpstreamMap, host: string, port: number): HostPort {
  return mappedUpstream(map, host, port) ?? { host, port };
}

/** Where a guest's `host:port` is connected, with the destination guard applied (src/transport/http/destination.ts). */
export interface Destination extends HostPort {
  /** For a name the guard checks: the lookup that keeps only allowed addresses (pass it to connect). */
  lookup?: DestinationGuard['lookup'];
  /** For an IP literal the guard refuses: the error to fail with; nothing may be connected. */
  refused?: CelgateError;
}

export interface UpstreamOptions {
  map?: UpstreamMap;
  /** Extra trusted CA certificates (PEM), added to the system roots. */
  extraCa?: readonly string[];
  timeoutMs: number;
  /**
   * Checks the addresses of destinations that are not in the map; default: a guard that refuses
   * every special-purpose range. `null` turns the check off (only for tests of other things).
   */
  guard?: DestinationGuard | null;
}

/** TLS sessions kept for resumption (one per upstream origin, oldest dropped first). */
export const MAX_TLS_SESSIONS = 256;

/** Loading ~140 system roots costs ~100 ms; services with the same extra CAs share one context. */
const TRUST_CONTEXTS = new Map<string, tls.SecureContext>();
const MAX_TRUST_CONTEXTS = 16;

function trustContext(extraCa: readonly string[]): tls.SecureContext {
  const key = extraCa.join('\n');
  let ctx = TRUST_CONTEXTS.get(key);
  if (ctx === undefined) {
    ctx = tls.createSecureContext({ ca: [...tls.rootCertificates, ...extraCa] });
    if (TRUST_CONTEXTS.size >= MAX_TRUST_CONTEXTS)
      TRUST_CONTEXTS.delete(TRUST_CONTEXTS.keys().next().value!);
    TRUST_CONTEXTS.set(key, ctx);
  }
  return ctx;
}

export class Upstream {
  readonly map: UpstreamMap;
  /** Trusted roots for upstream TLS: system roots plus the configured extra CAs. */
  readonly ca: string[];
  /** One context holding those roots, built once (shared by services with the same extra CAs). */
  readonly secureContext: tls.SecureContext;
  readonly timeoutMs: number;
  readonly guard: DestinationGuard | null;
  /** TLS sessions per upstream `host:port`, for resumption on the next connection. */
  private readonly sessions = new Map<string, Buffer>();

  constructor(options: UpstreamOptions) {
    this.map = options.map ?? new Map();
    this.timeoutMs = options.timeoutMs;
    this.guard = options.guard === undefined ? new DestinationGuard() : options.guard;
    this.ca = [...tls.rootCertificates, ...(options.extraCa ?? [])];
    this.secureContext = trustContext(options.extraCa ?? []);
  }

  /** Where `host:port` (as the guest asked for it) is connected: the map's entry, unchecked, or the
   * host itself under the destination guard. */
  destination(host: string, port: number): Destination {
    const mapped = mappedUpstream(this.map, host, port);
    if (mapped !== undefined || this.guard === null) return mapped ?? { host, port };
    if (net.isIP(host) === 0) return { host, port, lookup: this.guard.lookup };
    const v = this.guard.check(host);
    return v.ok ? { host, port } : { host, port, refused: this.guard.refusal(host, host, v.range) };
  }

  /**
   * The connector: a new connection to where `host:port` (as the guest asked for it) goes, with the
   * destination guard in its lookup and, for https, the trusted roots, SNI, the certificate checked
   * against `host` and TLS session resumption per origin. The caller has checked the destination
   * (`destination`) and must not call this for a refused one. Used by the pool for every
   * connection.
   */
  connect(scheme: 'http' | 'https', host: string, port: number): net.Socket {
    const target = this.destination(host, port);
    const base: net.TcpNetConnectOpts = { host: target.host, port: target.port };
    if (target.lookup !== undefined) base.lookup = target.lookup as unknown as net.LookupFunction;
    let socket: net.Socket;
    if (scheme === 'https') {
      const key = `${host}:${port}`;
      const session = this.sessions.get(key);
      const t = tls.connect({
        ...base,
        ...(net.isIP(host) !== 0 ? {} : { servername: host }),
        secureContext: this.secureContext,
        checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
        ...(session === undefined ? {} : { session }),
      });
      t.on('session', (s: Buffer) => {
        if (this.sessions.size >= MAX_TLS_SESSIONS && !this.sessions.has(key))
          this.sessions.delete(this.sessions.keys().next().value!);
        this.sessions.set(key, s);
      });
      socket = t;
    } else {
      socket = net.connect(base);
    }
    // Small heads must not wait on Nagle + delayed ACK.
    socket.setNoDelay(true);
    return socket;
  }

  /** Nothing to release: connections belong to the pool (`UpstreamPool.close`). */
  close(): void {}
}
