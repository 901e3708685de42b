/**
 * Gateway configuration: `loadConfig(file?, overrides?)` reads an optional YAML or JSON file, fills
 * embedded defaults, applies command-line overrides and returns a typed, validated GatewayConfig.
 * Each section is parsed by its own function so other areas can add theirs (add a field to
 * GatewayConfig, a parser below, and one line in `parseConfig`). Errors are CelgateError('E_CONFIG')
 * naming the file and the key. Reads files only; starts nothing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CelgateError } from '../errors.js';
import { parseMcpConfig, type McpConfig } from '../transport/mcp/config.js';
import { parseDnsConfig, type DnsConfig } from '../transport/dns/config.js';
import { parseHttpConfig, type HttpConfig } from '../transport/http/config.js';
import { parseFleetConfig, type FleetConfig } from '../fleet/config.js';
import { parseSecretsConfig, type SecretSpec } from '../transport/secrets.js';
import { DEFAULT_APPROVALS, type ApprovalsConfig } from '../control/approvals.js';

export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** A config file larger than this is refused (it is hand-written YAML, not data). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface ControlConfig {
  /** Unix socket path of the admin API (owner-only permissions). */
  socket: string;
  /** Optional loopback TCP listener "HOST:PORT" (bearer token required), or null. */
  tcp: string | null;
  token: string | null;
  /** Permit a TCP bind on a non-loopback address. Never the default. */
  allow_non_loopback: boolean;
}

export interface VsockPorts {
  http: number;
  mcp: number;
  dns: number;
  exec: number;
}

export interface VsockConfig {
  mode: 'tcp' | 'uds';
  host: string;
  /** Base path of the hybrid-vsock Unix sockets (`<base>_<port>`), required when mode is uds. */
  uds_base: string | null;
  ports: VsockPorts;
}

export interface LogConfig {
  level: LogLevel;
  /** Also append JSON log lines to this file, or null for stdout only. */
  file: string | null;
}

export interface GatewayConfig {
  /** The session ledger's failure policy and free-space reserve. */
  ledger: LedgerConfig;
  /** Human approval of `ask` decisions: bounds and fallback (docs/approvals.md). */
  approvals: ApprovalsConfig;
  session_id: string;
  data_dir: string;
  /** "balanced", "locked", or a path to a pack file. */
  profile: string;
  rules: string[];
  detection: string[];
  control: ControlConfig;
  vsock: VsockConfig;
  log: LogConfig;
  /** MCP upstream servers and per-call timeout (src/transport/mcp/config.ts, docs/mcp.md). */
  mcp: McpConfig;
  /** DNS interception: vsock on by default, optional UDP/TCP listener, upstreams (src/transport/dns/config.ts, docs/dns.md). */
  dns: DnsConfig;
  /** HTTP(S) interception on the vsock http port: limits, upstream map, extra CAs, CA dir (docs/http.md). */
  http: HttpConfig;
  /** Fleet membership over NATS JetStream, or null (src/fleet/config.ts, docs/fleet.md). */
  fleet: FleetConfig | null;
  /** Credentials substituted at egress for placeholders (src/transport/secrets.ts, docs/secrets.md). */
  secrets: SecretSpec[];
  watch_rules: boolean;
  /** Where the values came from, for error messages and the health endpoint. */
  source: string;
}

/** Command-line overrides; dotted keys (e.g. `vsock.ports.http`) are applied after the file. */
export type ConfigOverrides = Record<string, unknown>;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Generates a time-sortable session id: `YYYYMMDDTHHMMSSZ-<8 hex>`. */
export function newSessionId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

class Section {
  constructor(
    readonly source: string,
    readonly path: string,
    readonly raw: Obj,
    allowed: readonly string[],
  ) {
    for (const key of Object.keys(raw)) {
      if (!allowed.includes(key)) {
        const hint = allowed.find((a) => a.startsWith(key.slice(0, 3)));
        this.fail(
          key,
          `unknown key${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; known: ${allowed.join(', ')}`,
        );
      }
    }
  }
  fail(key: string, message: string): never {
    const where = this.path === '' ? key : `${this.path}.${key}`;
    throw new CelgateError('E_CONFIG', `${this.source}: ${where}: ${message}`, {
      details: { file: this.source, key: where },
    });
  }
  str(key: string, fallback: string): string {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '') this.fail(key, 'must be a non-empty string');
    return v;
  }
  strOrNull(key: string, fallback: string | null): string | null {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (typeof v !== 'string' || v === '') this.fail(key, 'must be a non-empty string or null');
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }
  port(key: string, fallback: number): number {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535)
      this.fail(key, 'must be a port number 0..65535');
    return v;
  }
  list(key: string): string[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== ''))
      this.fail(key, 'must be a list of paths');
    return v as string[];
  }
  oneOf<T extends string>(key: string, options: readonly T[], fallback: T): T {
    const v = this.str(key, fallback);
    if (!options.includes(v as T)) this.fail(key, `must be one of ${options.join(', ')}`);
    return v as T;
  }
  sub(key: string): Obj {
    const v = this.raw[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) this.fail(key, 'must be a mapping');
    return v;
  }
}

const TOP_KEYS = [
  'session_id',
  'data_dir',
  'profile',
  'rules',
  'detection',
  'control',
  'vsock',
  'log',
  'ledger',
  'approvals',
  'watch_rules',
  'mcp',
  'dns',
  'http',
  'fleet',
  'secrets',
];

/** What happens while the session ledger cannot record (docs/ledger.md, "When the ledger cannot write"). */
export interface LedgerConfig {
  /** Free bytes the ledger's file system must keep; below it new requests are refused. 0: no reserve. */
  min_free_bytes: number;
  /** fail_closed (default): refuse every request while the ledger cannot record; fail_open: let
   * decisions through unrecorded (counted, logged). */
  on_failure: 'fail_closed' | 'fail_open';
}

export function parseLedger(s: Section): LedgerConfig {
  const l = new Section(s.source, 'ledger', s.sub('ledger'), ['min_free_bytes', 'on_failure']);
  const v = l.raw.min_free_bytes;
  if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0))
    l.fail('min_free_bytes', 'must be a whole number of bytes ≥ 0');
  return {
    min_free_bytes: (v as number | undefined) ?? 64 * 1024 * 1024,
    on_failure: l.oneOf('on_failure', ['fail_closed', 'fail_open'] as const, 'fail_closed'),
  };
}

/** The `approvals:` section (docs/approvals.md): how many requests wait, how long, and whether
 * they wait while no approver is connected. */
export function parseApprovals(s: Section): ApprovalsConfig {
  const a = new Section(s.source, 'approvals', s.sub('approvals'), [
    'max_pending',
    'timeout_ms',
    'wait_without_approver',
  ]);
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = a.raw[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      a.fail(key, `must be a whole number ${min}..${max}`);
    return v as number;
  };
  return {
    max_pending: int('max_pending', DEFAULT_APPROVALS.max_pending, 0, 100_000),
    timeout_ms: int('timeout_ms', DEFAULT_APPROVALS.timeout_ms, 1, 3_600_000),
    wait_without_approver: a.bool('wait_without_approver', DEFAULT_APPROVALS.wait_without_approver),
  };
}

export function parseControl(s: Section, dataDir: string): ControlConfig {
  const c = new Section(s.source, 'control', s.sub('control'), [
    'socket',
    'tcp',
    'token',
    'allow_non_loopback',
  ]);
  const tcp = c.strOrNull('tcp', null);
  if (tcp !== null && !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(tcp))
    c.fail('tcp', 'must be "HOST:PORT"');
  const token = c.strOrNull('token', null);
  if (tcp !== null && token === null) c.fail('token', 'is required when control.tcp is set');
  if (token !== null && token.length < 16) c.fail('token', 'must be at least 16 characters');
  return {
    socket: c.str('socket', join(dataDir, 'control.sock')),
    tcp,
    token,
    allow_non_loopback: c.bool('allow_non_loopback', false),
  };
}

export function parseVsock(s: Section): VsockConfig {
  const v = new Section(s.source, 'vsock', s.sub('vsock'), ['mode', 'host', 'uds_base', 'ports']);
  const p = new Section(s.source, 'vsock.ports', v.sub('ports'), ['http', 'mcp', 'dns', 'exec']);
  const mode = v.oneOf('mode', ['tcp', 'uds'] as const, 'tcp');
  const udsBase = v.strOrNull('uds_base', null);
  if (mode === 'uds' && udsBase === null)
    v.fail('uds_base', 'is required when vsock.mode is "uds"');
  return {
    mode,
    host: v.str('host', '127.0.0.1'),
    uds_base: udsBase,
    ports: {
      http: p.port('http', 5002),
      mcp: p.port('mcp', 5003),
      dns: p.port('dns', 5007),
      exec: p.port('exec', 5000),
    },
  };
}

export function parseLog(s: Section): LogConfig {
  const l = new Section(s.source, 'log', s.sub('log'), ['level', 'file']);
  return { level: l.oneOf('level', LOG_LEVELS, 'info'), file: l.strOrNull('file', null) };
}

/** Validates a raw config object (already merged with overrides). */
export function parseConfig(raw: unknown, source = '<defaults>'): GatewayConfig {
  if (raw === null || raw === undefined) raw = {};
  if (!isObj(raw))
    throw new CelgateError('E_CONFIG', `${source}: the configuration must be a mapping`, {
      details: { file: source },
    });
  const s = new Section(source, '', raw, TOP_KEYS);
  const sessionId = s.str('session_id', newSessionId());
  if (!SESSION_ID_PATTERN.test(sessionId)) s.fail('session_id', `must match ${SESSION_ID_PATTERN}`);
  const dataDir = resolve(s.str('data_dir', 'data'));
  return {
    session_id: sessionId,
    data_dir: dataDir,
    profile: s.str('profile', 'balanced'),
    rules: s.list('rules'),
    detection: s.list('detection'),
    control: parseControl(s, dataDir),
    vsock: parseVsock(s),
    log: parseLog(s),
    ledger: parseLedger(s),
    approvals: parseApprovals(s),
    mcp: parseMcpConfig(s.raw.mcp, source),
    dns: parseDnsConfig(s.raw.dns, source),
    http: parseHttpConfig(s.raw.http, source),
    fleet: parseFleetConfig(s.raw.fleet, source),
    secrets: parseSecretsConfig(s.raw.secrets, source),
    watch_rules: s.bool('watch_rules', true),
    source,
  };
}

/** Sets `a.b.c = value` on a nested object, creating mappings on the way. */
function setDotted(target: Obj, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (!isObj(next)) node[part] = {};
    node = node[part] as Obj;
  }
  node[parts[parts.length - 1]!] = value;
}

function readConfigFile(file: string): Obj {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CelgateError(
      'E_CONFIG',
      `${file}: cannot read the configuration file: ${(err as Error).message}`,
      { cause: err, details: { file } },
    );
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES)
    throw new CelgateError('E_CONFIG', `${file}: larger than ${MAX_CONFIG_BYTES} bytes`, {
      details: { file },
    });
  let parsed: unknown;
  try {
    parsed = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new CelgateError(
      'E_CONFIG',
      `${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      { cause: err, details: { file } },
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isObj(parsed))
    throw new CelgateError('E_CONFIG', `${file}: the configuration must be a mapping`, {
      details: { file },
    });
  return parsed;
}

/**
 * Loads the configuration: embedded defaults, then `file` (YAML, or JSON by extension), then
 * `overrides` (dotted keys; undefined values are ignored). Relative rule paths in a file resolve
 * against the file's directory.
 */
export function loadConfig(file?: string, overrides: ConfigOverrides = {}): GatewayConfig {
  const raw: Obj = file === undefined ? {} : readConfigFile(file);
  if (file !== undefined) {
    const base = resolve(file, '..');
    const rel = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) ? join(base, p) : p);
    for (const key of ['rules', 'detection'] as const) {
      const v = raw[key];
      if (Array.isArray(v)) raw[key] = v.map(rel);
      else if (typeof v === 'string') raw[key] = [rel(v)];
    }
    if (typeof raw.profile === 'string' && /[/\\]|\.ya?ml$|\.json$/.test(raw.profile))
      raw.profile = rel(raw.profile);
    // Every other path in the file resolves against the file too (flags resolve against the
    // working directory). secrets[].file and fleet.creds resolve in their own parsers.
    const section = (name: string): Obj | null => (isObj(raw[name]) ? (raw[name] as Obj) : null);
    if (typeof raw.data_dir === 'string') raw.data_dir = rel(raw.data_dir);
    for (const [name, key] of [
      ['log', 'file'],
      ['control', 'socket'],
      ['vsock', 'uds_base'],
      ['http', 'ca_dir'],
    ] as const) {
      const sec = section(name);
      if (sec !== null && typeof sec[key] === 'string') sec[key] = rel(sec[key]);
    }
    const http = section('http');
    if (http !== null && Array.isArray(http.extra_ca)) http.extra_ca = http.extra_ca.map(rel);
    else if (http !== null && typeof http.extra_ca === 'string')
      http.extra_ca = [rel(http.extra_ca)];
  }
  for (const [key, value] of Object.entries(overrides))
    if (value !== undefined) setDotted(raw, key, value);
  return parseConfig(raw, file ?? '<defaults>');
}

/** Path of the session directory and its ledger for a config. */
export function sessionPaths(config: GatewayConfig): { sessionDir: string; sessionDb: string } {
  const sessionDir = join(config.data_dir, 'sessions', config.session_id);
  return { sessionDir, sessionDb: join(sessionDir, 'session.db') };
}
