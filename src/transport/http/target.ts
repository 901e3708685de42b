/**
 * Works out what a request is asking for from its request line, headers and connection context:
 * scheme, host (SNI authoritative over Host), port, path, query, and whether the Host header lied.
 * Hosts are put in their one canonical form (src/transport/hostname.ts) and paths are normalised
 * (`normalizePath`) before anything is judged; what is judged is what is forwarded. Pure: no
 * sockets, no clock. Malformed or over-limit input yields a typed refusal, not a throw.
 */
import type { HeaderMap } from '../../events/index.js';
import { canonicalHost } from '../hostname.js';
import type { GuestMeta } from '../vsock.js';

/** Per-connection facts the exchange needs: how the guest reached us. */
export interface ExchangeContext {
  scheme: 'http' | 'https';
  /** The TLS server name the guest sent; '' for plain HTTP. Authoritative over the Host header. */
  sniHost: string;
  /** Destination port the guest targeted (443 / 80 for transparent interception, the CONNECT port for the proxy). */
  port: number;
  meta: GuestMeta;
}

export interface RequestTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string;
  query: string;
  /** The raw Host header when it names a different host than SNI, else ''. */
  hostHeaderMismatch: string;
  /** The request target exactly as the guest sent it (for detections); path and query are judged. */
  rawTarget: string;
}

export type TargetResult =
  | { ok: true; target: RequestTarget }
  | {
      ok: false;
      status: 400 | 414 | 431;
      code: 'parse_error' | 'request_target_too_long' | 'too_many_headers';
      reason: string;
    };

export interface TargetLimits {
  maxRequestTarget: number;
  maxHeaderCount: number;
}

const HOST_CHARS = /^[a-z0-9_.-]+$/;

/** Splits `host[:port]` / `[v6][:port]` and canonicalises the host; null when malformed. */
export function parseHostHeader(value: string): { host: string; port: number | null } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value.trim());
  if (m === null) return null;
  const rawHost = m[1]!.toLowerCase();
  const bracketed = rawHost.startsWith('[');
  const c = canonicalHost(bracketed ? rawHost.slice(1, -1) : rawHost);
  if (!c.ok) return null;
  if (!bracketed && !HOST_CHARS.test(c.host)) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { host: c.host, port };
}

export type PathResult = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The path rules see and the upstream receives (RFC 3986 §6.2.2 and §5.2.4): percent-encoded
 * unreserved characters decoded (`%61` → `a`, `%2e` → `.`), other percent-encodings upper-cased
 * (`%2f` → `%2F`; an encoded `/` or `\` stays encoded, so it is never a separator here), runs of
 * `/` merged into one (servers that merge them would otherwise see `//admin` as `/admin`), and
 * dot segments removed (`/x/../admin` → `/admin`). Refused: malformed percent-encoding, a raw
 * backslash (some servers read it as `/`), and a path not starting with `/`.
 */
export function normalizePath(raw: string): PathResult {
  if (!raw.startsWith('/')) return { ok: false, reason: 'the path must start with "/"' };
  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex))
        return { ok: false, reason: 'the path has a malformed percent-encoding' };
      const ch = String.fromCharCode(parseInt(hex, 16));
      decoded += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
      i += 2;
    } else if (c === '\\') {
      return { ok: false, reason: 'the path contains a backslash; percent-encode it (%5C)' };
    } else decoded += c;
  }
  const segments = decoded.split('/').slice(1);
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    if (seg === '' && !last) continue; // `//` → `/`
    out.push(seg);
  }
  return { ok: true, path: `/${out.join('/')}` };
}

const bad = (reason: string): TargetResult => ({
  ok: false,
  status: 400,
  code: 'parse_error',
  reason,
});

export function resolveTarget(
  method: string,
  url: string,
  headers: HeaderMap,
  rawHeaderCount: number,
  ctx: ExchangeContext,
  limits: TargetLimits,
): TargetResult {
  if (rawHeaderCount > limits.maxHeaderCount) {
    return {
      ok: false,
      status: 431,
      code: 'too_many_headers',
      reason: `more than ${limits.maxHeaderCount} header fields`,
    };
  }
  if (url.length > limits.maxRequestTarget) {
    return {
      ok: false,
      status: 414,
      code: 'request_target_too_long',
      reason: `request target longer than ${limits.maxRequestTarget} bytes`,
    };
  }
  let pathAndQuery = url;
  let urlHost: { host: string; port: number | null } | null = null;
  if (/^https?:\/\//i.test(url)) {
    // Absolute form (explicit proxy, or a client that sends it anyway): split by hand, so the path
    // is normalised below exactly like an origin-form one.
    const m = /^https?:\/\/([^/?#]*)([^#]*)$/i.exec(url);
    if (m === null) return bad('request target is not a valid URL');
    if (m[1]!.includes('@')) return bad('request target carries user information');
    urlHost = parseHostHeader(m[1]!);
    if (urlHost === null) return bad('request target has an invalid host');
    pathAndQuery = m[2]!.startsWith('/') ? m[2]! : `/${m[2]!}`;
  } else if (method === 'OPTIONS' && url === '*') {
    pathAndQuery = '*';
  } else if (!url.startsWith('/')) {
    return bad('request target must be origin-form ("/path") or absolute-form');
  }
  const q = pathAndQuery.indexOf('?');
  const rawPath = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const query = q < 0 ? '' : pathAndQuery.slice(q + 1);
  let path = rawPath;
  if (rawPath !== '*') {
    const np = normalizePath(rawPath);
    if (!np.ok) return bad(np.reason);
    path = np.path;
  }

  const hostHeader = headers.host;
  if (hostHeader !== undefined && hostHeader.includes(',')) return bad('more than one Host header');
  const parsedHost = hostHeader === undefined ? null : parseHostHeader(hostHeader);
  if (hostHeader !== undefined && parsedHost === null) return bad('Host header is malformed');

  if (ctx.scheme === 'https' && ctx.sniHost !== '') {
    const claimed = parsedHost ?? urlHost;
    const mismatch = claimed !== null && claimed.host !== ctx.sniHost;
    // The Host port is trusted only when the Host names the SNI host.
    const port = !mismatch && claimed?.port != null ? claimed.port : ctx.port;
    return {
      ok: true,
      target: {
        scheme: 'https',
        host: ctx.sniHost,
        port,
        path,
        query,
        hostHeaderMismatch: mismatch ? (hostHeader ?? '') : '',
        rawTarget: url,
      },
    };
  }
  const named = urlHost ?? parsedHost;
  if (named === null) return bad('plain HTTP request without a Host header');
  const mismatch = urlHost !== null && parsedHost !== null && parsedHost.host !== urlHost.host;
  return {
    ok: true,
    target: {
      scheme: ctx.scheme,
      host: named.host,
      port: named.port ?? ctx.port,
      path,
      query,
      hostHeaderMismatch: mismatch ? (hostHeader ?? '') : '',
      rawTarget: url,
    },
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
]);

const KEEP_NONE: ReadonlySet<string> = new Set();

/**
 * Copies raw header pairs minus hop-by-hop headers (and any named in `Connection`), keeping order
 * and repeats. `keep` re-admits names (the WebSocket path keeps `upgrade` and `connection`).
 */
export function forwardHeaders(
  raw: readonly string[],
  keep: ReadonlySet<string> = KEEP_NONE,
): string[] {
  // The shared hop-by-hop set is copied only when a Connection header names more headers to drop.
  let dropped: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) {
        const name = t.trim().toLowerCase();
        if (name !== '' && !keep.has(name) && !HOP_BY_HOP.has(name))
          (dropped ??= new Set(HOP_BY_HOP)).add(name);
      }
    }
  }
  if (dropped === null) dropped = HOP_BY_HOP;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (dropped.has(name) && !keep.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** The Host header value sent upstream: the judged host, with the port when it is not the default. */
export function hostHeaderFor(t: Pick<RequestTarget, 'scheme' | 'host' | 'port'>): string {
  const h = t.host.includes(':') ? `[${t.host}]` : t.host;
  const dflt = (t.scheme === 'https' && t.port === 443) || (t.scheme === 'http' && t.port === 80);
  return dflt ? h : `${h}:${t.port}`;
}
