/**
 * The admin API transport: an HTTP server on a Unix socket (mode 0600) and optionally on loopback
 * TCP with a bearer token. Owns routing (a small table of `{method, path, handler}`; `:name`
 * segments become params), body limits, JSON parsing and JSON errors. Handlers are injected, so
 * other areas add routes without editing this file. Never reachable from the guest; makes no
 * policy decisions itself.
 */
import { timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP } from 'node:net';
import { dirname } from 'node:path';
import { CelgateError, type ErrorCode, type Issue } from '../errors.js';

/** Largest request body the admin API accepts. */
export const MAX_CONTROL_BODY = 1024 * 1024;
/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;
/** How long close() lets in-flight admin requests finish before cutting connections. */
export const CONTROL_CLOSE_GRACE_MS = 2_000;
/** Idle/slow-request bound for admin connections. */
export const CONTROL_REQUEST_TIMEOUT_MS = 30_000;

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteRequest {
  method: Method;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (undefined when the body was empty). */
  body: unknown;
  headers: IncomingMessage['headers'];
  /** Who is asking: "control-socket" on the Unix socket, "token" on TCP (bearer token checked). */
  peer?: string;
  /** Aborts when the client goes away (long polls stop waiting). */
  signal?: AbortSignal;
}

export interface RouteResponse {
  status?: number;
  /** Serialised as JSON unless `text` is given. */
  json?: unknown;
  text?: string;
  contentType?: string;
}

export interface Route {
  method: Method;
  /** e.g. "/v1/rules/:id". */
  path: string;
  handler(req: RouteRequest): RouteResponse | Promise<RouteResponse>;
}

/** A handler error with an HTTP status; CelgateErrors are mapped by code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: Issue[],
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  E_CONFIG: 400,
  E_RULE_COMPILE: 400,
  E_RULE_INVALID: 400,
  E_IR_INVALID: 400,
  E_SIGMA_UNSUPPORTED: 400,
  E_PARSE: 400,
  E_RULE_NOT_FOUND: 404,
  E_LIMIT: 413,
  E_TIMEOUT: 504,
  E_UNAVAILABLE: 503,
};

export function errorBody(
  code: string,
  message: string,
  issues?: Issue[],
): { error: { code: string; message: string; issues?: Issue[] } } {
  return { error: issues === undefined ? { code, message } : { code, message, issues } };
}

interface Compiled {
  route: Route;
  parts: string[];
}

function match(parts: string[], segments: string[]): Record<string, string> | null {
  if (parts.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        return null;
      }
    } else if (p !== s) return null;
  }
  return params;
}

export class Router {
  private readonly routes: Compiled[] = [];
  add(...routes: Route[]): this {
    for (const route of routes)
      this.routes.push({ route, parts: route.path.split('/').filter(Boolean) });
    return this;
  }
  find(
    method: string,
    path: string,
  ): { route: Route; params: Record<string, string> } | { allowed: string[] } | null {
    const segments = path.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const c of this.routes) {
      const params = match(c.parts, segments);
      if (params === null) continue;
      if (c.route.method === method) return { route: c.route, params };
      allowed.push(c.route.method);
    }
    return allowed.length > 0 ? { allowed } : null;
  }
}

function send(res: ServerResponse, status: number, body: RouteResponse): void {
  const text = body.text ?? `${JSON.stringify(body.json ?? {})}\n`;
  res.writeHead(status, {
    'content-type':
      body.contentType ??
      (body.text === undefined ? 'application/json' : 'text/plain; charset=utf-8'),
  });
  res.end(text);
}

/** Reads the body up to MAX_CONTROL_BODY. An oversized body is drained (up to 4× the limit, then
 * the connection is cut) so the client still reads the 413. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_CONTROL_BODY) chunks.push(chunk);
      else if (size > 4 * MAX_CONTROL_BODY) req.destroy();
    });
    req.on('end', () => {
      if (size > MAX_CONTROL_BODY)
        reject(new HttpError(413, 'E_LIMIT', `request body larger than ${MAX_CONTROL_BODY} bytes`));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function tokenOk(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** A request listener for node:http: the async handler catches its own errors (below). */
function voidHandler(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => void handler(req, res);
}

function makeHandler(router: Router, token: string | null) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const url = new URL(req.url ?? '/', 'http://control');
      if (token !== null && !tokenOk(req.headers.authorization, token)) {
        // A browser cannot send the header: the report page (/ui) takes the token once in the query
        // (then an HttpOnly same-site cookie carries it for the page's own data requests).
        const isUi =
          req.method === 'GET' && (url.pathname === '/ui' || url.pathname.startsWith('/ui/'));
        const fromQuery = url.searchParams.get('token');
        const fromCookie = /(?:^|;\s*)celgate_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
        const given =
          fromQuery ?? (fromCookie === undefined ? undefined : decodeURIComponent(fromCookie));
        if (!isUi || given === undefined || !tokenOk(`Bearer ${given}`, token)) {
          throw new HttpError(
            401,
            'E_UNAUTHORIZED',
            'a valid "Authorization: Bearer <token>" header is required',
          );
        }
        if (fromQuery !== null)
          res.setHeader(
            'set-cookie',
            `celgate_token=${encodeURIComponent(fromQuery)}; Path=/ui; HttpOnly; SameSite=Strict`,
          );
      }
      const found = router.find(req.method ?? 'GET', url.pathname);
      if (found === null)
        throw new HttpError(404, 'E_NOT_FOUND', `no route ${req.method} ${url.pathname}`);
      if (!('route' in found)) {
        res.setHeader('allow', found.allowed.join(', '));
        throw new HttpError(
          405,
          'E_METHOD',
          `${req.method} is not allowed on ${url.pathname} (allowed: ${found.allowed.join(', ')})`,
        );
      }
      const raw = await readBody(req);
      let body: unknown;
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch (err) {
          throw new HttpError(
            400,
            'E_PARSE',
            `request body is not valid JSON: ${(err as Error).message}`,
          );
        }
      }
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const out = await found.route.handler({
        method: found.route.method,
        path: url.pathname,
        params: found.params,
        query: url.searchParams,
        body,
        headers: req.headers,
        // Node cannot read SO_PEERCRED, so the Unix socket's peer is named by the socket itself.
        peer: token === null ? 'control-socket' : 'token',
        signal: gone.signal,
      });
      send(res, out.status ?? 200, out);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError)
        send(res, err.status, { json: errorBody(err.code, err.message, err.issues) });
      else if (err instanceof CelgateError)
        send(res, STATUS_BY_CODE[err.code] ?? 500, { json: errorBody(err.code, err.message) });
      else
        send(res, 500, { json: errorBody('E_INTERNAL', (err as Error)?.message ?? String(err)) });
    }
  };
}

export interface ControlServerOptions {
  socket: string;
  tcp: string | null;
  token: string | null;
  allowNonLoopback: boolean;
  router: Router;
}

export interface ControlServer {
  addresses: Record<string, string>;
  close(): Promise<void>;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Removes a stale socket file; refuses when another process is still listening on it. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket)
    throw new CelgateError('E_CONFIG', `control socket path ${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((done) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
  if (alive) throw new CelgateError('E_CONFIG', `another gateway is listening on ${path}`);
  unlinkSync(path);
}

function listen(
  server: Server,
  target: { path: string } | { host: string; port: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function harden(server: Server): Server {
  server.requestTimeout = CONTROL_REQUEST_TIMEOUT_MS;
  server.headersTimeout = 10_000;
  server.maxHeadersCount = 64;
  return server;
}

export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const servers: Server[] = [];
  const addresses: Record<string, string> = {};
  if (Buffer.byteLength(opts.socket) > MAX_SOCKET_PATH) {
    throw new CelgateError(
      'E_CONFIG',
      `control socket path is longer than ${MAX_SOCKET_PATH} bytes (a Unix socket limit): ${opts.socket}`,
    );
  }
  mkdirSync(dirname(opts.socket), { recursive: true, mode: 0o700 });
  await clearStaleSocket(opts.socket);
  const uds = harden(createServer(voidHandler(makeHandler(opts.router, null))));
  const oldMask = process.umask(0o177);
  try {
    await listen(uds, { path: opts.socket });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(opts.socket, 0o600);
  servers.push(uds);
  addresses.control = opts.socket;
  if (opts.tcp !== null) {
    const idx = opts.tcp.lastIndexOf(':');
    const host = opts.tcp.slice(0, idx).replace(/^\[|\]$/g, '');
    const port = Number(opts.tcp.slice(idx + 1));
    if (!isLoopbackHost(host) && !opts.allowNonLoopback) {
      await new Promise<void>((r) => uds.close(() => r()));
      throw new CelgateError(
        'E_CONFIG',
        `control.tcp ${opts.tcp} is not a loopback address; set control.allow_non_loopback to force it`,
      );
    }
    if (opts.token === null)
      throw new CelgateError('E_CONFIG', 'control.tcp requires control.token');
    const tcp = harden(createServer(voidHandler(makeHandler(opts.router, opts.token))));
    await listen(tcp, { host, port });
    const a = tcp.address();
    if (a !== null && typeof a === 'object')
      addresses.control_tcp = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    servers.push(tcp);
  }
  return {
    addresses,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.close(() => r());
              s.closeIdleConnections();
              // In-flight requests get a grace period; then every connection is cut.
              setTimeout(() => s.closeAllConnections(), CONTROL_CLOSE_GRACE_MS).unref();
            }),
        ),
      );
      try {
        unlinkSync(opts.socket);
      } catch {
        /* already gone */
      }
    },
  };
}
