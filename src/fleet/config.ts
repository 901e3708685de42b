/**
 * The `fleet` section of the gateway config (docs/fleet.md). Without it there is no fleet: nothing
 * connects to NATS and nothing changes. Parsing is pure apart from resolving relative file paths
 * against the config file's directory; errors are CelgateError('E_CONFIG') naming the key.
 */
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CelgateError } from '../errors.js';
import {
  DEFAULT_PACKS_BUCKET,
  DEFAULT_STATUS_BUCKET,
  DEFAULT_STREAM,
  GATEWAY_ID_PATTERN,
  subjectToken,
} from './names.js';

export interface FleetTls {
  /** PEM file with the CA that signed the NATS servers' certificates. */
  ca: string | null;
  /** Client certificate and key (PEM files) for mutual TLS, or null. */
  cert: string | null;
  key: string | null;
}

export interface FleetConfig {
  /** NATS server URLs, e.g. ["nats://127.0.0.1:4222"]. */
  servers: string[];
  gateway_id: string;
  token: string | null;
  user: string | null;
  password: string | null;
  /** A NATS `.creds` file (JWT + nkey seed). */
  creds: string | null;
  tls: FleetTls | null;
  packs_bucket: string;
  status_bucket: string;
  stream: string;
  /** Replicas for the buckets and the stream when this gateway creates them (1 or 3 in a cluster). */
  replicas: number;
  /** How long the stream remembers message ids to drop re-published rows (seconds). */
  duplicate_window_s: number;
  /** Follow the packs bucket (default true). */
  policy: boolean;
  /** Publish decisions, findings and protocol rows to the stream (default true). */
  export: boolean;
}

export const DEFAULT_DUPLICATE_WINDOW_S = 3600;
const KEYS = [
  'nats',
  'gateway_id',
  'token',
  'user',
  'password',
  'creds',
  'tls',
  'packs_bucket',
  'status_bucket',
  'stream',
  'replicas',
  'duplicate_window_s',
  'policy',
  'export',
];
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(source: string, key: string, message: string): never {
  throw new CelgateError('E_CONFIG', `${source}: fleet.${key}: ${message}`, {
    details: { file: source, key: `fleet.${key}` },
  });
}

/** The default gateway id: this host's name, made subject-safe. */
export function defaultGatewayId(): string {
  return subjectToken(hostname()).slice(0, 64) || 'celgate';
}

export function parseFleetConfig(raw: unknown, source = '<defaults>'): FleetConfig | null {
  if (raw === undefined || raw === null) return null;
  if (!isObj(raw))
    throw new CelgateError('E_CONFIG', `${source}: fleet: must be a mapping`, {
      details: { file: source, key: 'fleet' },
    });
  for (const key of Object.keys(raw))
    if (!KEYS.includes(key)) fail(source, key, `unknown key; known: ${KEYS.join(', ')}`);
  const base = source.startsWith('<') ? process.cwd() : dirname(resolve(source));
  const path = (key: string, v: unknown): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string' || v === '') fail(source, key, 'must be a file path');
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const str = (key: string, fallback: string | null): string | null => {
    const v = raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || v === '') fail(source, key, 'must be a non-empty string');
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') fail(source, key, 'must be true or false');
    return v;
  };
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      fail(source, key, `must be an integer ${min}..${max}`);
    return v;
  };

  const nats = raw.nats;
  const servers =
    typeof nats === 'string'
      ? nats
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
      : nats;
  if (
    !Array.isArray(servers) ||
    servers.length === 0 ||
    !servers.every((s) => typeof s === 'string' && s !== '')
  ) {
    fail(source, 'nats', 'is required: a NATS URL ("nats://127.0.0.1:4222") or a list of them');
  }
  for (const s of servers as string[]) {
    if (!/^(nats|tls|wss?):\/\/[^\s]+$/.test(s) && !/^[A-Za-z0-9.-]+:\d{1,5}$/.test(s))
      fail(source, 'nats', `"${s}" is not a NATS URL (nats://host:port)`);
  }
  const gatewayId = str('gateway_id', null) ?? defaultGatewayId();
  if (!GATEWAY_ID_PATTERN.test(gatewayId))
    fail(source, 'gateway_id', `must match ${GATEWAY_ID_PATTERN} (it is a NATS subject token)`);
  let tls: FleetTls | null = null;
  if (raw.tls !== undefined && raw.tls !== null && raw.tls !== false) {
    const t = raw.tls === true ? {} : raw.tls;
    if (!isObj(t)) fail(source, 'tls', 'must be true or a mapping {ca, cert, key}');
    for (const k of Object.keys(t))
      if (!['ca', 'cert', 'key'].includes(k))
        fail(source, `tls.${k}`, 'unknown key; known: ca, cert, key');
    tls = { ca: path('tls.ca', t.ca), cert: path('tls.cert', t.cert), key: path('tls.key', t.key) };
    if ((tls.cert === null) !== (tls.key === null)) fail(source, 'tls', 'cert and key go together');
  }
  const user = str('user', null);
  const password = str('password', null);
  if ((user === null) !== (password === null))
    fail(source, 'user', 'user and password go together');
  const token = str('token', null);
  const creds = path('creds', raw.creds);
  if ([token !== null, user !== null, creds !== null].filter(Boolean).length > 1)
    fail(source, 'token', 'use one of token, user/password or creds');
  const name = (key: string, fallback: string) => {
    const v = str(key, fallback)!;
    if (!NAME.test(v)) fail(source, key, `must match ${NAME}`);
    return v;
  };
  return {
    servers: servers as string[],
    gateway_id: gatewayId,
    token,
    user,
    password,
    creds,
    tls,
    packs_bucket: name('packs_bucket', DEFAULT_PACKS_BUCKET),
    status_bucket: name('status_bucket', DEFAULT_STATUS_BUCKET),
    stream: name('stream', DEFAULT_STREAM),
    replicas: int('replicas', 1, 1, 5),
    duplicate_window_s: int('duplicate_window_s', DEFAULT_DUPLICATE_WINDOW_S, 1, 7 * 24 * 3600),
    policy: bool('policy', true),
    export: bool('export', true),
  };
}
