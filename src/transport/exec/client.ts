/**
 * Host side of the exec protocol: opens a stream to the guest exec service (hybrid-vsock
 * `CONNECT 5000` on the base socket in uds mode, a TCP port in tcp mode), sends one ExecRequest
 * frame and resolves with the validated ExecResponse.
 *
 * Owns: that one exchange and its timeout. Must not: decide (callers decide first), record, log.
 */
import type net from 'node:net';
import { connect } from 'node:net';
import { CelgateError } from '../../errors.js';
import { connectGuestPort } from '../vsock.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_EXEC_REQUEST_BYTES,
  MAX_EXEC_RESPONSE_BYTES,
  parseExecResponse,
  type ExecRequest,
  type ExecResponse,
} from './protocol.js';

/** Where the guest exec service is reached from the host. */
export type GuestExecTarget =
  { mode: 'uds'; udsBase: string; port: number } | { mode: 'tcp'; host: string; port: number };

/** Extra time beyond the command's own timeout before the host gives up on the guest. */
export const EXEC_REPLY_GRACE_MS = 5_000;

function openStream(target: GuestExecTarget): Promise<net.Socket> {
  if (target.mode === 'uds') return connectGuestPort(target.udsBase, target.port);
  return new Promise((resolve, reject) => {
    const s = connect({ host: target.host, port: target.port, noDelay: true });
    s.once('error', (cause) =>
      reject(
        new CelgateError(
          'E_UPSTREAM',
          `guest exec service at ${target.host}:${target.port} unreachable`,
          { cause },
        ),
      ),
    );
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}

/** Sends one request and waits for its response. Rejects with E_UPSTREAM / E_TIMEOUT / E_PARSE / E_LIMIT. */
export async function execOnGuest(
  target: GuestExecTarget,
  req: ExecRequest,
): Promise<ExecResponse> {
  const frame = encodeFrame(req, MAX_EXEC_REQUEST_BYTES);
  const socket = await openStream(target);
  return new Promise<ExecResponse>((resolve, reject) => {
    const decoder = new FrameDecoder(MAX_EXEC_RESPONSE_BYTES);
    let settled = false;
    const done = (err: Error | null, value?: ExecResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== null) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () =>
        done(
          new CelgateError(
            'E_TIMEOUT',
            `guest exec service did not answer within ${req.timeout_ms + EXEC_REPLY_GRACE_MS} ms`,
          ),
        ),
      req.timeout_ms + EXEC_REPLY_GRACE_MS,
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        const frames = decoder.push(chunk);
        if (frames.length > 0) {
          const r = parseExecResponse(frames[0]);
          if (r.id !== req.id && r.id !== '')
            throw new CelgateError('E_PARSE', `exec response for ${r.id}, expected ${req.id}`);
          done(null, r);
        }
      } catch (e) {
        done(e as Error);
      }
    });
    socket.on('error', (cause) =>
      done(new CelgateError('E_UPSTREAM', 'guest exec connection failed', { cause })),
    );
    socket.on('close', () =>
      done(
        new CelgateError(
          'E_UPSTREAM',
          'guest exec service closed the connection without answering',
        ),
      ),
    );
    socket.resume();
    socket.write(frame);
  });
}
