/**
 * The guest exec service (guest port 5000): reads length-prefixed JSON ExecRequests from a stream,
 * runs each command with bounded output and a timeout, and answers with an ExecResponse frame.
 * It runs inside the guest and trusts its only peer, the host — policy was decided on the host
 * before the request was sent (DESIGN §7: a refused command never reaches the guest).
 *
 * Owns: spawning, output capture and the per-connection request loop. Must not: decide, log to the
 * ledger, or accept connections from inside the guest (it is only reachable over the vsock path).
 */
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { CelgateError, isCelgateError } from '../../errors.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_EXEC_OUTPUT_BYTES,
  MAX_EXEC_REQUEST_BYTES,
  MAX_EXEC_RESPONSE_BYTES,
  parseExecRequest,
  type ExecRequest,
  type ExecResponse,
  type ExecResult,
} from '../exec/protocol.js';

/** Commands running at once across all connections; more are answered with an E_LIMIT error. */
export const MAX_CONCURRENT_EXECS = 16;

let running = 0;

/** Runs one validated request. Never throws: spawn failures become `spawn_error`. */
export function runCommand(req: ExecRequest): Promise<ExecResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    let timedOut = false;
    let spawnError: string | null = null;
    const child = spawn(req.argv[0]!, req.argv.slice(1), {
      cwd: req.cwd,
      env: { ...process.env, ...req.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const keep = (chunks: Buffer[], chunk: Buffer, used: number): number => {
      const room = MAX_EXEC_OUTPUT_BYTES - used;
      if (room <= 0) {
        truncated = true;
        return used;
      }
      if (chunk.length > room) truncated = true;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      return used + Math.min(room, chunk.length);
    };
    child.stdout.on('data', (c: Buffer) => (outBytes = keep(out, c, outBytes)));
    child.stderr.on('data', (c: Buffer) => (errBytes = keep(err, c, errBytes)));
    child.stdin.on('error', () => {}); // the command may exit without reading stdin
    child.stdin.end(req.stdin === '' ? undefined : Buffer.from(req.stdin, 'base64'));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, req.timeout_ms);
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = `${e.code ?? 'ERROR'}: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        v: 1,
        id: req.id,
        exit_code: spawnError !== null ? null : code,
        signal: signal ?? null,
        stdout: Buffer.concat(out).toString('base64'),
        stderr: Buffer.concat(err).toString('base64'),
        truncated,
        timed_out: timedOut,
        duration_ms: performance.now() - started,
        spawn_error: spawnError,
      });
    });
  });
}

function errorFrame(id: string, err: unknown): ExecResponse {
  const code = isCelgateError(err) ? err.code : 'E_INTERNAL';
  return { v: 1, id, error: { code, message: err instanceof Error ? err.message : String(err) } };
}

/**
 * Serves one connection: requests are handled in order, one response frame each. A malformed or
 * oversized frame gets one error frame and the connection is closed (the stream cannot resync).
 */
export function serveExecConnection(stream: Duplex): void {
  const decoder = new FrameDecoder(MAX_EXEC_REQUEST_BYTES);
  let chain = Promise.resolve();
  const send = (r: ExecResponse) => {
    if (!stream.destroyed) stream.write(encodeFrame(r, MAX_EXEC_RESPONSE_BYTES));
  };
  stream.on('error', () => stream.destroy());
  stream.on('data', (chunk: Buffer) => {
    let frames: unknown[];
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      send(errorFrame('', e));
      stream.end();
      return;
    }
    for (const frame of frames) {
      chain = chain.then(async () => {
        const id =
          typeof (frame as { id?: unknown })?.id === 'string' ? (frame as { id: string }).id : '';
        let req: ExecRequest;
        try {
          req = parseExecRequest(frame);
        } catch (e) {
          send(errorFrame(id, e));
          return;
        }
        if (running >= MAX_CONCURRENT_EXECS) {
          send(
            errorFrame(
              id,
              new CelgateError('E_LIMIT', `more than ${MAX_CONCURRENT_EXECS} commands running`),
            ),
          );
          return;
        }
        running++;
        try {
          send(await runCommand(req));
        } finally {
          running--;
        }
      });
    }
  });
}
