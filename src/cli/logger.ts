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
import { existsSync, fstatSync, statSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger } from 'pino';

/** Buffered log bytes that trigger a write (SonicBoom requires less than its 16 KiB maxWrite). */
export const LOG_BUFFER_BYTES = 8 * 1024;
/** Longest a log line waits in the buffer. */
export const LOG_FLUSH_MS = 50;

export interface GatewayLogger {
  logger: Logger;
  /**
   * Writes one info line whose fields are already JSON (`"a":1,"b":"x"`, no braces): the same line
   * `logger.info(obj, msg)` would write (level, time, base fields, then these, then msg), without
   * pino's generic serialisation. For the one line per decision.
   */
  infoLine(fields: string, msg: string): void;
  /** Starts the write of everything buffered now (does not wait). */
  flushNow(): void;
  /** Writes out everything buffered and stops the flush timer; await before exit. */
  flush(): Promise<void>;
}

type Boom = DestinationStream & { flush(cb?: (err?: Error) => void): void };

interface Sink {
  boom: Boom;
  /** Regular files are written synchronously (see `writesSync`). */
  sync: boolean;
}

/**
 * A regular file takes a buffered write synchronously: an 8 KiB copy into the page cache costs
 * microseconds, while an asynchronous write hands it to the thread pool, whose wake-up preempted the
 * event loop for ~0.5 ms per write on the 2-vCPU benchmark machine. Pipes, terminals and anything
 * unknown keep asynchronous writes, so a slow reader of stdout can never stall the gateway.
 */
function writesSync(dest: number | string): boolean {
  try {
    return typeof dest === 'number' ? fstatSync(dest).isFile() : !existsSync(dest) || statSync(dest).isFile();
  } catch {
    return false;
  }
}

function buffered(dest: number | string): Sink {
  const sync = writesSync(dest);
  const boom = pino.destination({ dest, sync, minLength: LOG_BUFFER_BYTES, ...(typeof dest === 'string' ? { mkdir: true, append: true } : {}) }) as Boom;
  return { boom, sync };
}

/** Writes out what is buffered. SonicBoom's async flush throws while its file is still opening; the next tick writes it. */
function tryFlush(s: Sink, cb?: () => void): void {
  try {
    if (s.sync) {
      s.boom.flush(); // synchronous in sync mode (flushSync would also fsync every time)
      cb?.();
    } else {
      s.boom.flush(cb === undefined ? undefined : () => cb());
    }
  } catch {
    cb?.();
  }
}

export function createLogger(config: LogConfig, base: Record<string, unknown> = {}, options: { stdout?: boolean } = {}): GatewayLogger {
  const streams: Sink[] = [];
  if (options.stdout !== false) streams.push(buffered(1));
  if (config.file !== null) streams.push(buffered(config.file));
  const opts = {
    level: config.level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const logger =
    streams.length === 1 ? pino(opts, streams[0]!.boom) : pino(opts, pino.multistream(streams.map((s) => ({ stream: s.boom, level: config.level }))));
  const flushNow = () => {
    for (const s of streams) tryFlush(s);
  };
  const baseFields = JSON.stringify(opts.base).slice(1, -1);
  const head = baseFields === '' ? '' : `${baseFields},`;
  const infoLine = (fields: string, msg: string) => {
    if (!logger.isLevelEnabled('info')) return;
    const line = `{"level":"info","time":"${new Date().toISOString()}",${head}${fields === '' ? '' : `${fields},`}"msg":${JSON.stringify(msg)}}\n`;
    for (const s of streams) s.boom.write(line);
  };
  const timer = setInterval(flushNow, LOG_FLUSH_MS);
  timer.unref();
  return {
    logger,
    infoLine,
    flushNow,
    flush: () => {
      clearInterval(timer);
      return Promise.all(streams.map((s) => new Promise<void>((resolve) => tryFlush(s, resolve)))).then(() => undefined);
    },
  };
}
