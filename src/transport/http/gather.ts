/**
 * Reading the first bytes of a connection (the sniffed byte, a ClientHello) before handing it on:
 * shared by the vsock HTTP service and the explicit proxy's tunnels. Owns only the buffering, the
 * timer and the listener clean-up; `parse` decides when enough has arrived (and bounds it).
 */
import type { Duplex } from 'node:stream';
import { CelgateError } from '../../errors.js';

/** Reads from a paused socket until `parse` returns a value; bounded by time and by `parse` itself. */
export function gather<T>(
  socket: Duplex,
  head: Buffer,
  timeoutMs: number,
  parse: (b: Buffer) => T | null,
  closedMessage = 'connection closed mid-handshake',
): Promise<{ value: T; buf: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = head;
    let first: T | null;
    try {
      first = parse(buf);
    } catch (err) {
      reject(err as Error);
      return;
    }
    if (first !== null) return resolve({ value: first, buf });
    const done = (err: Error | null, value?: T) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.pause();
      if (err !== null) reject(err);
      else resolve({ value: value as T, buf });
    };
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      try {
        const v = parse(buf);
        if (v !== null) done(null, v);
      } catch (err) {
        done(err as Error);
      }
    };
    const onEnd = () =>
      done(new CelgateError('E_PARSE', closedMessage, { details: { truncated: true } }));
    const timer = setTimeout(
      () => done(new CelgateError('E_TIMEOUT', `no complete ClientHello within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}
