/**
 * Secrets that never enter the guest (docs/secrets.md): the config section `secrets`, the store of
 * values (read from the environment or a file at start, files again on reload), and the byte work
 * around a decision — finding placeholders (`celgate-secret-<id>`) in what a guest sends,
 * substituting the real values just before forwarding to a host the secret belongs to, and
 * replacing values echoed back in responses with their placeholders.
 *
 * Owns the values: they leave this module only in bytes written to an upstream. Must not decide
 * (src/policy/secrets.ts judges where a secret may go) or log a value.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CelgateError } from '../errors.js';
import type { HeaderMap } from '../events/index.js';
import {
  SECRET_ID_PATTERN,
  SECRET_PLACEHOLDER_PREFIX,
  secretHostMatches,
  type SecretPolicy,
} from '../policy/secrets.js';

/** A secret as configured: exactly one source. */
export interface SecretSpec {
  id: string;
  env: string | null;
  file: string | null;
  hosts: string[];
  in_body: boolean;
  allow_plain_http: boolean;
}

/** Longest accepted secret value (a token, not a document). */
export const MAX_SECRET_BYTES = 16 * 1024;
const PLACEHOLDER = /celgate-secret-([A-Za-z0-9_]{1,64})/g;
const HOST_PATTERN = /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function placeholderFor(id: string): string {
  return `${SECRET_PLACEHOLDER_PREFIX}${id}`;
}

/** Parses the `secrets:` list; paths of `file` resolve against the config file. */
export function parseSecretsConfig(raw: unknown, source = '<defaults>'): SecretSpec[] {
  if (raw === undefined || raw === null) return [];
  const fail = (at: string, message: string): never => {
    throw new CelgateError('E_CONFIG', `${source}: ${at}: ${message}`, {
      details: { file: source, key: at },
    });
  };
  if (!Array.isArray(raw)) fail('secrets', 'must be a list of {id, env | file, hosts, in_body}');
  const base = source.startsWith('<') ? process.cwd() : dirname(resolve(source));
  const seen = new Set<string>();
  return (raw as unknown[]).map((s, i) => {
    const at = `secrets[${i}]`;
    if (!isObj(s)) fail(at, 'must be a mapping');
    const o = s as Obj;
    for (const k of Object.keys(o))
      if (!['id', 'env', 'file', 'hosts', 'in_body', 'allow_plain_http'].includes(k))
        fail(`${at}.${k}`, 'unknown key; known: id, env, file, hosts, in_body, allow_plain_http');
    const id = o.id;
    if (typeof id !== 'string' || !SECRET_ID_PATTERN.test(id))
      fail(`${at}.id`, `must match ${SECRET_ID_PATTERN}`);
    if (seen.has(id as string)) fail(`${at}.id`, `"${id}" is configured twice`);
    seen.add(id as string);
    const env = o.env === undefined ? null : o.env;
    const file = o.file === undefined ? null : o.file;
    if ((env === null) === (file === null))
      fail(at, `secret "${id}" needs exactly one source: env or file`);
    if (env !== null && (typeof env !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)))
      fail(`${at}.env`, 'must be an environment variable name');
    if (file !== null && (typeof file !== 'string' || file === ''))
      fail(`${at}.file`, 'must be a file path');
    const hosts = o.hosts;
    if (!Array.isArray(hosts) || hosts.length === 0 || !hosts.every((h) => typeof h === 'string'))
      fail(
        `${at}.hosts`,
        'must be a non-empty list of host names ("api.example.com", "*.example.com")',
      );
    const canonical = (hosts as string[]).map((h) => h.toLowerCase().replace(/\.$/, ''));
    for (const h of canonical)
      if (!HOST_PATTERN.test(h))
        fail(`${at}.hosts`, `"${h}" is not a host name or *.suffix pattern`);
    for (const k of ['in_body', 'allow_plain_http'] as const)
      if (o[k] !== undefined && typeof o[k] !== 'boolean')
        fail(`${at}.${k}`, 'must be true or false');
    return {
      id: id as string,
      env: env as string | null,
      file:
        file === null
          ? null
          : isAbsolute(file as string)
            ? (file as string)
            : resolve(base, file as string),
      hosts: canonical,
      in_body: o.in_body === true,
      allow_plain_http: o.allow_plain_http === true,
    };
  });
}

/** Reads one secret's value; throws E_CONFIG naming the secret (never its value). */
export function readSecret(spec: SecretSpec, env: NodeJS.ProcessEnv = process.env): string {
  let value: string;
  if (spec.env !== null) {
    const v = env[spec.env];
    if (v === undefined || v === '')
      throw new CelgateError(
        'E_CONFIG',
        `secret "${spec.id}": the environment variable ${spec.env} is not set`,
      );
    value = v;
  } else {
    try {
      value = readFileSync(spec.file!, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new CelgateError(
        'E_CONFIG',
        `secret "${spec.id}": cannot read ${spec.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (value === '')
      throw new CelgateError('E_CONFIG', `secret "${spec.id}": ${spec.file} is empty`);
  }
  if (Buffer.byteLength(value) > MAX_SECRET_BYTES)
    throw new CelgateError(
      'E_CONFIG',
      `secret "${spec.id}": the value is longer than ${MAX_SECRET_BYTES} bytes`,
    );
  if (/[\r\n\0]/.test(value))
    throw new CelgateError(
      'E_CONFIG',
      `secret "${spec.id}": the value contains a line break or NUL, which cannot go in a header`,
    );
  if (value.includes(SECRET_PLACEHOLDER_PREFIX))
    throw new CelgateError('E_CONFIG', `secret "${spec.id}": the value contains a placeholder`);
  return value;
}

/** What `celgate secrets list` shows of a secret: never its value. */
export interface SecretStatus {
  id: string;
  source: string;
  hosts: string[];
  in_body: boolean;
  allow_plain_http: boolean;
  loaded: boolean;
  /** Why it is not loaded. */
  problem: string | null;
  /** Length of the value, as a sanity check that the right thing is loaded. */
  length: number | null;
}

export function secretStatuses(
  specs: readonly SecretSpec[],
  env: NodeJS.ProcessEnv = process.env,
): SecretStatus[] {
  return specs.map((s) => {
    let problem: string | null = null;
    let length: number | null = null;
    try {
      length = readSecret(s, env).length;
    } catch (err) {
      problem = (err as Error).message;
    }
    return {
      id: s.id,
      source: s.env !== null ? `env ${s.env}` : `file ${s.file}`,
      hosts: s.hosts,
      in_body: s.in_body,
      allow_plain_http: s.allow_plain_http,
      loaded: problem === null,
      problem,
      length,
    };
  });
}

/** The ids of the placeholders in `text` (in order of first appearance). */
function idsIn(text: string, out: Set<string>): void {
  if (!text.includes(SECRET_PLACEHOLDER_PREFIX)) return;
  for (const m of text.matchAll(PLACEHOLDER)) out.add(m[1]!);
}

/** `Basic <base64>` → the decoded credentials, or null. */
function basicCredentials(value: string): string | null {
  const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (m === null) return null;
  return Buffer.from(m[1]!, 'base64').toString('utf8');
}

const EMPTY = Buffer.alloc(0);
const BASIC_AUTH_HEADERS = new Set(['authorization', 'proxy-authorization']);

export class SecretStore {
  private values = new Map<string, string>();
  private policies = new Map<string, SecretPolicy>();
  /** Values as bytes, for scrubbing responses; longest first. */
  private valueBytes: { bytes: Buffer; placeholder: Buffer }[] = [];
  private maxValue = 0;

  private constructor(private readonly specs: readonly SecretSpec[]) {}

  /** Loads every secret; throws E_CONFIG naming the first that cannot be read. */
  static load(specs: readonly SecretSpec[], env: NodeJS.ProcessEnv = process.env): SecretStore {
    const store = new SecretStore(specs);
    store.install(new Map(specs.map((s) => [s.id, readSecret(s, env)])));
    return store;
  }

  /** Re-reads file-sourced secrets (reload / SIGHUP). A secret that fails keeps its old value. */
  reload(env: NodeJS.ProcessEnv = process.env): { changed: string[]; problems: string[] } {
    const next = new Map(this.values);
    const changed: string[] = [];
    const problems: string[] = [];
    for (const s of this.specs) {
      try {
        const v = readSecret(s, env);
        if (v !== next.get(s.id)) changed.push(s.id);
        next.set(s.id, v);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    this.install(next);
    return { changed, problems };
  }

  private install(values: Map<string, string>): void {
    this.values = values;
    this.policies = new Map(
      this.specs.map((s) => [
        s.id,
        { id: s.id, hosts: s.hosts, in_body: s.in_body, allow_plain_http: s.allow_plain_http },
      ]),
    );
    this.valueBytes = [...values.entries()]
      .map(([id, v]) => ({ bytes: Buffer.from(v), placeholder: Buffer.from(placeholderFor(id)) }))
      .sort((a, b) => b.bytes.length - a.bytes.length);
    this.maxValue = Math.max(0, ...this.valueBytes.map((v) => v.bytes.length));
  }

  get size(): number {
    return this.specs.length;
  }

  catalog(): ReadonlyMap<string, SecretPolicy> {
    return this.policies;
  }

  /** Whether a secret in a body may be substituted (some secret has `in_body`). */
  get anyInBody(): boolean {
    return this.specs.some((s) => s.in_body);
  }

  /**
   * The secrets a request carries where they would be substituted: any header value (Basic
   * credentials decoded), the query, and — for secrets with `in_body` — the body text.
   */
  requestSecrets(headers: HeaderMap, query: string, bodyText?: string): string[] {
    const ids = new Set<string>();
    for (const [name, value] of Object.entries(headers)) {
      idsIn(value, ids);
      if (BASIC_AUTH_HEADERS.has(name)) {
        const creds = basicCredentials(value);
        if (creds !== null) idsIn(creds, ids);
      }
    }
    idsIn(query, ids);
    if (bodyText !== undefined && bodyText.includes(SECRET_PLACEHOLDER_PREFIX)) {
      const inBody = new Set<string>();
      idsIn(bodyText, inBody);
      for (const id of inBody) if (this.policies.get(id)?.in_body === true) ids.add(id);
    }
    return [...ids].sort();
  }

  /** `text` with the placeholders of secrets that may go to `host` replaced by their values. */
  substitute(text: string, host: string, scheme: string, inBody = false): string {
    if (!text.includes(SECRET_PLACEHOLDER_PREFIX)) return text;
    return text.replace(PLACEHOLDER, (whole, id: string) => {
      const p = this.policies.get(id);
      const v = this.values.get(id);
      if (p === undefined || v === undefined || (inBody && !p.in_body)) return whole;
      if (!secretHostMatches(host, p.hosts) || (scheme !== 'https' && !p.allow_plain_http))
        return whole;
      return v;
    });
  }

  /** Raw header pairs (`[name, value, …]`) with placeholders substituted; the same array when none. */
  substituteHeaders(raw: readonly string[], host: string, scheme: string): readonly string[] {
    let out: string[] | null = null;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      let next = this.substitute(value, host, scheme);
      if (BASIC_AUTH_HEADERS.has(name.toLowerCase())) {
        const creds = basicCredentials(value);
        if (creds !== null && creds.includes(SECRET_PLACEHOLDER_PREFIX)) {
          const sub = this.substitute(creds, host, scheme);
          if (sub !== creds) next = `Basic ${Buffer.from(sub).toString('base64')}`;
        }
      }
      if (next !== value) {
        out ??= [...raw];
        out[i + 1] = next;
      }
    }
    return out ?? raw;
  }

  /** Whether responses from `host` are scanned for echoed values (a secret may be sent there). */
  scrubs(host: string): boolean {
    for (const p of this.policies.values()) if (secretHostMatches(host, p.hosts)) return true;
    return false;
  }

  /** `text` with every secret value replaced by its placeholder. */
  scrub(text: string): string {
    let out = text;
    for (const [id, v] of this.values)
      if (out.includes(v)) out = out.split(v).join(placeholderFor(id));
    return out;
  }

  /** A streaming scrubber for one response body (values may straddle chunks). */
  bodyScrubber(): BodyScrubber {
    return new BodyScrubber(this.valueBytes, this.maxValue);
  }
}

/**
 * Replaces secret values by their placeholders in a byte stream. Only a chunk's tail that begins a
 * value is held back for the next chunk, so a streamed (SSE) body is not delayed otherwise.
 */
export class BodyScrubber {
  private carry = EMPTY;
  constructor(
    private readonly values: readonly { bytes: Buffer; placeholder: Buffer }[],
    private readonly maxValue: number,
  ) {}

  push(chunk: Buffer): Buffer {
    const data = this.replace(this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]));
    const keep = this.partialTail(data);
    this.carry = keep === 0 ? EMPTY : Buffer.from(data.subarray(data.length - keep));
    return keep === 0 ? data : data.subarray(0, data.length - keep);
  }

  /** Length of the longest tail of `data` that is the start of some value (it may complete later). */
  private partialTail(data: Buffer): number {
    for (let i = Math.max(0, data.length - (this.maxValue - 1)); i < data.length; i++) {
      const n = data.length - i;
      for (const v of this.values) {
        if (
          v.bytes.length > n &&
          v.bytes[0] === data[i] &&
          v.bytes.compare(data, i, data.length, 0, n) === 0
        )
          return n;
      }
    }
    return 0;
  }

  end(): Buffer {
    const rest = this.replace(this.carry);
    this.carry = EMPTY;
    return rest;
  }

  private replace(data: Buffer): Buffer {
    let out = data;
    for (const v of this.values) {
      let at = out.indexOf(v.bytes);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(out.subarray(from, at), v.placeholder);
        from = at + v.bytes.length;
        at = out.indexOf(v.bytes, from);
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }
}
