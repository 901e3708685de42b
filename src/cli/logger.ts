/**
 * The gateway's structured logger (pino, JSON lines on stdout, optionally also a file). Lines are
 * buffered (SonicBoom `minLength`) and written when LOG_BUFFER_BYTES have gathered or every
 * LOG_FLUSH_MS, whichever comes first — the same cadence as the ledger's batched commits — so a
 * decision's log line costs the request path a buffer append, not a write (one asynchronous write
 * per line cost the gateway ~50–90 µs of CPU per decision on the 2-core benchmark machine, most of
 * it thread-pool wake-ups). `flushNow()` writes out at once (after "ready", before exit); `flush()`
 * drains everything and waits. Owns log formatting and flushing; it makes no decisions and reads
 * no state.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger } from 'pino';

/** Buffered log bytes that trigger a write (SonicBoom requires less than its 16 KiB maxWrite). */
export const LOG_BUFFER_BYTES = 8 * 1024;
/** Longest a log line waits in the buffer. */
export const LOG_FLUSH_MS = 50;

export interface GatewayLogger {
  logger: Logger;
  /** Starts the write of everything buffered now (does not wait). */
  flushNow(): void;
  /** Writes out everything buffered and stops the flush timer; await before exit. */
  flush(): Promise<void>;
}

type Boom = DestinationStream & { flush(cb?: (err?: Error) => void): void };

const buffered = (dest: number | string): Boom =>
  pino.destination({ dest, sync: false, minLength: LOG_BUFFER_BYTES, ...(typeof dest === 'string' ? { mkdir: true, append: true } : {}) }) as Boom;

/** SonicBoom's flush throws while it is still opening its file; the next tick writes it. */
function tryFlush(s: Boom, cb?: () => void): void {
  try {
    s.flush(cb === undefined ? undefined : () => cb());
  } catch {
    cb?.();
  }
}

export function createLogger(config: LogConfig, base: Record<string, unknown> = {}, options: { stdout?: boolean } = {}): GatewayLogger {
  const streams: Boom[] = [];
  if (options.stdout !== false) streams.push(buffered(1));
  if (config.file !== null) streams.push(buffered(config.file));
  const opts = {
    level: config.level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const logger =
    streams.length === 1 ? pino(opts, streams[0]!) : pino(opts, pino.multistream(streams.map((stream) => ({ stream, level: config.level }))));
  const flushNow = () => {
    for (const s of streams) tryFlush(s);
  };
  const timer = setInterval(flushNow, LOG_FLUSH_MS);
  timer.unref();
  return {
    logger,
    flushNow,
    flush: () => {
      clearInterval(timer);
      return Promise.all(streams.map((s) => new Promise<void>((resolve) => tryFlush(s, resolve)))).then(() => undefined);
    },
  };
}
