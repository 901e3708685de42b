/**
 * The gateway's structured logger (pino, JSON lines on stdout, optionally also a file). Every line
 * — pino's and the pre-serialised decision lines of `infoLine` — goes into one `LineBuffer`, in
 * order, and is written out when LOG_BUFFER_BYTES have gathered or every LOG_FLUSH_MS, whichever
 * comes first (the ledger commits on the same cadence). So a decision's log line costs the request
 * path an array push, not a write: one asynchronous write per line cost the gateway ~50–90 µs of
 * CPU per decision on the 2-vCPU benchmark VM (thread-pool wake-ups), and SonicBoom's own
 * buffering re-measures its whole buffer on every line. `flushNow()` writes out at once (after
 * "ready"); `flush()` writes out and waits for the writes (before exit).
 *
 * Owns log formatting, buffering and flushing. Must not: make decisions or read state.
 */
import { existsSync, fstatSync, statSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger } from 'pino';

/**
 * Buffered log bytes (UTF-16 units, near enough) that trigger a write. Each write is a syscall
 * (~0.2 ms on the benchmark VM); at 4,000 decisions/s the 50 ms timer, not the size, sets the pace.
 */
export const LOG_BUFFER_BYTES = 64 * 1024;
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
  /** Writes out everything buffered, waits for it, and stops the flush timer; await before exit. */
  flush(): Promise<void>;
}

type Boom = DestinationStream & { flush(cb?: (err?: Error) => void): void };

interface Sink {
  boom: Boom;
  /** Regular files are written synchronously (see `writesSync`). */
  sync: boolean;
}

/**
 * A regular file takes a buffered write synchronously: a copy into the page cache costs
 * microseconds, while an asynchronous write hands it to the thread pool, whose wake-up preempted the
 * event loop for ~0.5 ms per write on the 2-vCPU benchmark VM. Pipes, terminals and anything
 * unknown keep asynchronous writes, so a slow reader of stdout can never stall the gateway.
 */
function writesSync(dest: number | string): boolean {
  try {
    return typeof dest === 'number'
      ? fstatSync(dest).isFile()
      : !existsSync(dest) || statSync(dest).isFile();
  } catch {
    return false;
  }
}

/** A SonicBoom that writes each chunk it is given at once (the buffering happens in LineBuffer). */
function sink(dest: number | string): Sink {
  const sync = writesSync(dest);
  const boom = pino.destination({
    dest,
    sync,
    // minLength 1 (not 0): writes go out at once, and flush(cb) still waits for a write in flight.
    minLength: 1,
    maxWrite: 4 * LOG_BUFFER_BYTES,
    // A log file is created owner-only (0600): it names hosts, paths and rules.
    ...(typeof dest === 'string' ? { mkdir: true, append: true, mode: 0o600 } : {}),
  }) as Boom;
  return { boom, sync };
}

/** pino's destination and infoLine's: lines in order, written out as one chunk per flush. */
class LineBuffer {
  private parts: string[] = [];
  private bytes = 0;

  constructor(private readonly sinks: readonly Sink[]) {}

  write(line: string): boolean {
    this.parts.push(line);
    this.bytes += line.length;
    if (this.bytes >= LOG_BUFFER_BYTES) this.flush();
    return true;
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.bytes = 0;
    for (const s of this.sinks) {
      try {
        s.boom.write(chunk);
      } catch {
        // A destination that fails (closed, still opening) must not take the gateway down.
      }
    }
  }
}

/** Resolves once an asynchronous sink has no write in flight (sync sinks are done already). */
function drained(s: Sink): Promise<void> {
  if (s.sync) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      s.boom.flush(() => resolve());
    } catch {
      resolve(); // SonicBoom's flush throws while its file is still opening
    }
  });
}

export function createLogger(
  config: LogConfig,
  base: Record<string, unknown> = {},
  options: { stdout?: boolean } = {},
): GatewayLogger {
  const sinks: Sink[] = [];
  if (options.stdout !== false) sinks.push(sink(1));
  if (config.file !== null) sinks.push(sink(config.file));
  const buffer = new LineBuffer(sinks);
  const opts = {
    level: config.level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const logger = pino(opts, buffer);
  const baseFields = JSON.stringify(opts.base).slice(1, -1);
  const head = baseFields === '' ? '' : `${baseFields},`;
  const infoLine = (fields: string, msg: string) => {
    if (!logger.isLevelEnabled('info')) return;
    buffer.write(
      `{"level":"info","time":"${new Date().toISOString()}",${head}${fields === '' ? '' : `${fields},`}"msg":${JSON.stringify(msg)}}\n`,
    );
  };
  const flushNow = () => buffer.flush();
  const timer = setInterval(flushNow, LOG_FLUSH_MS);
  timer.unref();
  return {
    logger,
    infoLine,
    flushNow,
    flush: async () => {
      clearInterval(timer);
      buffer.flush();
      await Promise.all(sinks.map(drained));
    },
  };
}
