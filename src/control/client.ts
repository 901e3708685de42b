/**
 * The client side of the admin API: one JSON call over the gateway's Unix socket. Used by the CLI
 * (`celgate events|stats|rules …|exec`), the test gateway helper and the benchmarks. Owns the
 * request/response plumbing and its bounds; it makes no decisions.
 */
import { request, type Agent } from 'node:http';
import { CelgateError } from '../errors.js';

/** Longest answer read from the admin API (exec outputs are bounded by the exec protocol). */
export const MAX_CONTROL_ANSWER_BYTES = 16 * 1024 * 1024;

export interface ControlResponse {
  status: number;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  json: any;
  text: string;
}

export interface ControlRequestOptions {
  /** A string body is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  agent?: Agent;
  /** Abort when no answer arrives within this many milliseconds. */
  timeoutMs?: number;
}

export function controlRequest(
  socketPath: string,
  method: string,
  path: string,
  options: ControlRequestOptions = {},
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const { body, agent, timeoutMs } = options;
    const payload =
      body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = {
      ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    };
    const req = request(
      {
        socketPath,
        method,
        path,
        headers,
        ...(agent === undefined ? {} : { agent }),
        ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_CONTROL_ANSWER_BYTES)
            req.destroy(new CelgateError('E_LIMIT', 'admin API answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new CelgateError(
          'E_TIMEOUT',
          // Without a timeout of ours it is the agent's idle timeout on the socket that ran out.
          `no answer from ${socketPath} within ${timeoutMs ?? req.socket?.timeout ?? '?'} ms`,
        ),
      ),
    );
    req.on('error', (err) =>
      reject(
        err instanceof CelgateError
          ? err
          : new CelgateError(
              'E_UNAVAILABLE',
              `cannot reach the gateway admin API at ${socketPath}: ${err.message}`,
              { cause: err },
            ),
      ),
    );
    req.end(payload);
  });
}
