/**
 * The exec protocol between the host (celgate) and the guest exec service on guest port 5000
 * (docs/guest.md): frames of a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
 * The host sends one ExecRequest per frame and reads one ExecResponse per frame, sequentially.
 *
 * Owns: the frame codec (sans-io `FrameDecoder`), request/response validation and the bounds on
 * both. Must not: touch sockets, spawn processes, decide or log.
 */
import { CelgateError } from '../../errors.js';

export const EXEC_PROTOCOL_VERSION = 1;
/** Largest request frame (argv + env + stdin) the guest accepts. */
export const MAX_EXEC_REQUEST_BYTES = 1024 * 1024;
/** Largest response frame the host accepts (two capped, base64-encoded outputs plus slack). */
export const MAX_EXEC_RESPONSE_BYTES = 12 * 1024 * 1024;
/** Bytes of stdout and of stderr kept per command; the rest is dropped and `truncated` set. */
export const MAX_EXEC_OUTPUT_BYTES = 4 * 1024 * 1024;
export const MAX_ARGV_ITEMS = 1024;
export const MAX_ARG_CHARS = 64 * 1024;
export const MAX_ENV_ITEMS = 256;
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
export const MAX_EXEC_TIMEOUT_MS = 10 * 60_000;

export interface ExecRequest {
  v: 1;
  /** Correlates the response; chosen by the host. */
  id: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeout_ms: number;
  /** Base64 stdin, '' for none. */
  stdin: string;
}

export interface ExecResult {
  v: 1;
  id: string;
  /** Exit status, or null when the command was killed by a signal or could not start. */
  exit_code: number | null;
  signal: string | null;
  /** Base64. */
  stdout: string;
  stderr: string;
  truncated: boolean;
  timed_out: boolean;
  duration_ms: number;
  /** Set when the command could not be started (ENOENT, EACCES …). */
  spawn_error: string | null;
}

export interface ExecProtocolError {
  v: 1;
  id: string;
  error: { code: string; message: string };
}

export type ExecResponse = ExecResult | ExecProtocolError;

/** Encodes one frame. Throws E_LIMIT when the payload exceeds `max`. */
export function encodeFrame(value: unknown, max: number): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  if (body.length > max)
    throw new CelgateError('E_LIMIT', `exec frame of ${body.length} bytes exceeds ${max}`, {
      details: { limit: max },
    });
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/**
 * Sans-io frame decoder: push bytes, get parsed JSON values. Throws E_LIMIT on an oversized length
 * prefix (before buffering the body) and E_PARSE on invalid JSON; after a throw the stream is dead.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly max: number) {}

  push(chunk: Buffer): unknown[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: unknown[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > this.max)
        throw new CelgateError('E_LIMIT', `exec frame length ${len} exceeds ${this.max}`, {
          details: { limit: this.max },
        });
      if (this.buf.length < 4 + len) break;
      const body = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      try {
        out.push(JSON.parse(body.toString('utf8')));
      } catch (cause) {
        throw new CelgateError('E_PARSE', 'exec frame is not valid JSON', { cause });
      }
    }
    return out;
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buf.length;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (message: string): never => {
  throw new CelgateError('E_PARSE', `exec request: ${message}`);
};

/** Validates a decoded request (guest side). Throws E_PARSE / E_LIMIT naming the field. */
export function parseExecRequest(value: unknown): ExecRequest {
  if (!isObj(value)) return bad('must be a JSON object');
  if (value.v !== EXEC_PROTOCOL_VERSION)
    return bad(`unsupported version ${JSON.stringify(value.v)}`);
  const id = value.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > 128)
    return bad('id must be a string of 1..128 chars');
  const argv = value.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    return bad('argv must be a non-empty list of strings');
  }
  if (argv.length > MAX_ARGV_ITEMS)
    throw new CelgateError('E_LIMIT', `exec request: argv has more than ${MAX_ARGV_ITEMS} items`);
  if (argv.some((a: string) => a.length > MAX_ARG_CHARS || a.includes('\0'))) {
    throw new CelgateError(
      'E_LIMIT',
      `exec request: an argument is longer than ${MAX_ARG_CHARS} chars or contains NUL`,
    );
  }
  if (argv[0] === '') return bad('argv[0] must not be empty');
  const cwd = value.cwd ?? '/';
  if (typeof cwd !== 'string' || !cwd.startsWith('/') || cwd.includes('\0'))
    return bad('cwd must be an absolute path');
  const envRaw = value.env ?? {};
  if (!isObj(envRaw)) return bad('env must be an object of strings');
  const envEntries = Object.entries(envRaw);
  if (envEntries.length > MAX_ENV_ITEMS)
    throw new CelgateError('E_LIMIT', `exec request: env has more than ${MAX_ENV_ITEMS} entries`);
  const env: Record<string, string> = {};
  for (const [k, v] of envEntries) {
    if (
      typeof v !== 'string' ||
      k === '' ||
      k.includes('=') ||
      k.includes('\0') ||
      v.includes('\0')
    )
      return bad(`env.${k} is invalid`);
    env[k] = v;
  }
  const timeout = value.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS;
  if (
    typeof timeout !== 'number' ||
    !Number.isInteger(timeout) ||
    timeout <= 0 ||
    timeout > MAX_EXEC_TIMEOUT_MS
  ) {
    return bad(`timeout_ms must be an integer in 1..${MAX_EXEC_TIMEOUT_MS}`);
  }
  const stdin = value.stdin ?? '';
  if (typeof stdin !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(stdin))
    return bad('stdin must be base64');
  return { v: 1, id, argv: argv as string[], cwd, env, timeout_ms: timeout, stdin };
}

/** Validates a decoded response (host side). Throws E_PARSE. */
export function parseExecResponse(value: unknown): ExecResponse {
  const fail = (m: string): never => {
    throw new CelgateError('E_PARSE', `exec response: ${m}`);
  };
  if (!isObj(value) || value.v !== EXEC_PROTOCOL_VERSION || typeof value.id !== 'string')
    return fail('missing v/id');
  if (value.error !== undefined) {
    const e = value.error;
    if (!isObj(e) || typeof e.code !== 'string' || typeof e.message !== 'string')
      return fail('error must have code and message');
    return { v: 1, id: value.id, error: { code: e.code, message: e.message } };
  }
  const nullableInt = (k: string) => {
    const x = value[k];
    if (x !== null && (typeof x !== 'number' || !Number.isInteger(x)))
      fail(`${k} must be an integer or null`);
  };
  nullableInt('exit_code');
  for (const k of ['stdout', 'stderr'])
    if (typeof value[k] !== 'string') fail(`${k} must be base64 text`);
  for (const k of ['truncated', 'timed_out'])
    if (typeof value[k] !== 'boolean') fail(`${k} must be a boolean`);
  if (typeof value.duration_ms !== 'number') fail('duration_ms must be a number');
  if (value.signal !== null && typeof value.signal !== 'string')
    fail('signal must be a string or null');
  if (value.spawn_error !== null && typeof value.spawn_error !== 'string')
    fail('spawn_error must be a string or null');
  return value as unknown as ExecResult;
}

export function isExecError(r: ExecResponse): r is ExecProtocolError {
  return 'error' in r;
}
