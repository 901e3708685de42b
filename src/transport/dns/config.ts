/**
 * The `dns` section of the gateway config file (defaults documented in docs/dns.md), and the adapter
 * `startDnsFromConfig` that `celgate start` calls. Parsing is pure and throws CelgateError('E_CONFIG')
 * naming the key; the adapter only maps config + composition-root deps onto `startDnsService`.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { CelgateError } from '../../errors.js';
import type { Decider } from '../../events/decision.js';
import type { EventSink } from '../../events/sink.js';
import { DEFAULT_CACHE_ENTRIES } from './cache.js';
import { MAX_CACHE_TTL_S } from './limits.js';
import type { DnsLog } from './resolver.js';
import {
  DEFAULT_STATIC_TTL_S,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_UPSTREAMS,
  normaliseStatic,
  parseListen,
} from './settings.js';
import { parseUpstream } from './upstream.js';

export const MAX_TIMEOUT_MS = 60_000;
export const MAX_CACHE_ENTRIES = 1_000_000;
export const MAX_STATIC_NAMES = 10_000;
/** The `upstreams` entry that stands for the host's own resolvers (`nameserver` lines). */
export const SYSTEM_UPSTREAMS = 'system';
export const RESOLV_CONF = '/etc/resolv.conf';

/** The `nameserver` addresses of a resolv.conf text (IP literals only; scoped `fe80::1%eth0`
 * addresses are skipped: an upstream is a plain address). */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+([^\s#;]+)/.exec(line);
    const ip = m?.[1];
    if (ip !== undefined && !ip.includes('%') && net.isIP(ip) !== 0)
      out.push(net.isIPv6(ip) ? `[${ip}]:53` : `${ip}:53`);
  }
  return out;
}

export interface DnsConfig {
  /** Serve the guest's DNS vsock port (`vsock.ports.dns`, 5007). On by default. */
  vsock: boolean;
  /** "IP:PORT" for plain UDP + TCP listeners, or null (default). */
  listen: string | null;
  upstreams: string[];
  static: Record<string, string[]>;
  static_ttl_s: number;
  timeout_ms: number;
  cache_entries: number;
  cache_max_ttl_s: number;
}

const KEYS = [
  'vsock',
  'listen',
  'upstreams',
  'static',
  'static_ttl_s',
  'timeout_ms',
  'cache_entries',
  'cache_max_ttl_s',
];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(source: string, key: string, message: string): never {
  throw new CelgateError('E_CONFIG', `${source}: dns.${key}: ${message}`, {
    details: { file: source, key: `dns.${key}` },
  });
}

function int(
  source: string,
  o: Obj,
  key: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    fail(source, key, `must be an integer ${min}..${max}`);
  return v;
}

export function parseDnsConfig(
  raw: unknown,
  source = '<defaults>',
  resolvConf = RESOLV_CONF,
): DnsConfig {
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw))
    throw new CelgateError('E_CONFIG', `${source}: dns: must be a mapping`, {
      details: { file: source, key: 'dns' },
    });
  for (const key of Object.keys(raw))
    if (!KEYS.includes(key)) fail(source, key, `unknown key; known: ${KEYS.join(', ')}`);
  const vsock = raw.vsock ?? true;
  if (typeof vsock !== 'boolean') fail(source, 'vsock', 'must be true or false');
  const listen = raw.listen ?? null;
  if (listen !== null) {
    if (typeof listen !== 'string') fail(source, 'listen', 'must be "IP:PORT" or null');
    try {
      parseListen(listen);
    } catch (err) {
      fail(source, 'listen', (err as Error).message);
    }
  }
  const listed = raw.upstreams ?? [...DEFAULT_UPSTREAMS];
  if (!Array.isArray(listed) || !listed.every((u) => typeof u === 'string'))
    fail(source, 'upstreams', 'must be a list of "IP[:PORT]" or "system"');
  const upstreams: string[] = [];
  for (const u of listed as string[]) {
    if (u !== SYSTEM_UPSTREAMS) {
      upstreams.push(u);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(resolvConf, 'utf8');
    } catch (err) {
      fail(source, 'upstreams', `"system" needs ${resolvConf}: ${(err as Error).message}`);
    }
    const found = resolvConfNameservers(text);
    if (found.length === 0)
      fail(source, 'upstreams', `"system": ${resolvConf} lists no nameserver`);
    upstreams.push(...found);
  }
  for (const u of upstreams) {
    try {
      parseUpstream(u);
    } catch (err) {
      fail(source, 'upstreams', (err as Error).message);
    }
  }
  const statics = raw.static ?? {};
  if (!isObj(statics)) fail(source, 'static', 'must be a mapping of name → list of IP addresses');
  if (Object.keys(statics).length > MAX_STATIC_NAMES)
    fail(source, 'static', `at most ${MAX_STATIC_NAMES} names`);
  const table: Record<string, string[]> = {};
  for (const [name, v] of Object.entries(statics)) {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || !list.every((a) => typeof a === 'string' && net.isIP(a) !== 0)) {
      fail(source, `static.${name}`, 'must be an IP address or a list of IP addresses');
    }
    table[name] = list as string[];
  }
  normaliseStatic(table);
  return {
    vsock,
    listen: listen as string | null,
    upstreams,
    static: table,
    static_ttl_s: int(source, raw, 'static_ttl_s', DEFAULT_STATIC_TTL_S, 0, MAX_CACHE_TTL_S),
    timeout_ms: int(source, raw, 'timeout_ms', DEFAULT_TIMEOUT_MS, 10, MAX_TIMEOUT_MS),
    cache_entries: int(source, raw, 'cache_entries', DEFAULT_CACHE_ENTRIES, 0, MAX_CACHE_ENTRIES),
    cache_max_ttl_s: int(source, raw, 'cache_max_ttl_s', MAX_CACHE_TTL_S, 0, 7 * MAX_CACHE_TTL_S),
  };
}

export interface DnsStartDeps {
  session_id: string;
  profile_id?: string;
  vsock: { mode: 'tcp' | 'uds'; host: string; uds_base: string | null; port: number };
  decider: Decider;
  sink: EventSink;
  logger: DnsLog;
}

/** Starts the DNS service from config, or returns an empty service when nothing is enabled. */
export async function startDnsFromConfig(dns: DnsConfig, deps: DnsStartDeps) {
  if (!dns.vsock && dns.listen === null)
    return { name: 'dns', addresses: {}, routes: [], close: async () => {} };
  const v = deps.vsock;
  // Loaded here, not at the top: parsing a config must not load the resolver (src/gateway/config.ts).
  const { startDnsService } = await import('./service.js');
  const service = await startDnsService(
    {
      origin: { session_id: deps.session_id, profile_id: deps.profile_id ?? '' },
      vsock: dns.vsock
        ? v.mode === 'uds'
          ? { mode: 'uds', udsBase: v.uds_base ?? '', port: v.port }
          : { mode: 'tcp', host: v.host, port: v.port }
        : null,
      listen: dns.listen,
      upstreams: dns.upstreams,
      static: dns.static,
      static_ttl_s: dns.static_ttl_s,
      timeout_ms: dns.timeout_ms,
      cache_entries: dns.cache_entries,
      cache_max_ttl_s: dns.cache_max_ttl_s,
    },
    { decider: deps.decider, sink: deps.sink, log: deps.logger },
  );
  // Served on the admin API (never reachable from the guest): counters, including why malformed
  // messages were refused. Structurally a control Route; transport does not import src/control.
  const statsRoute = {
    method: 'GET' as const,
    path: '/v1/dns/stats',
    handler: () => ({ json: { listeners: service.addresses, ...service.stats() } }),
  };
  return {
    name: 'dns',
    addresses: service.addresses,
    routes: [statsRoute],
    close: () => service.close(),
  };
}
