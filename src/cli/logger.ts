/**
 * The gateway's structured logger (pino, JSON lines on stdout, optionally also a file). Writes are
 * asynchronous (SonicBoom buffers, so a decision's log line costs the request path a buffer append,
 * not a syscall); `flush()` drains everything before exit. Owns log formatting and flushing; it
 * makes no decisions and reads no state.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger } from 'pino';

export interface GatewayLogger {
  logger: Logger;
  /** Writes out everything buffered; await before exit. */
  flush(): Promise<void>;
}

type Boom = DestinationStream & { flush(cb?: (err?: Error) => void): void };

export function createLogger(config: LogConfig, base: Record<string, unknown> = {}, options: { stdout?: boolean } = {}): GatewayLogger {
  const streams: Boom[] = [];
  if (options.stdout !== false) streams.push(pino.destination({ dest: 1, sync: false }) as Boom);
  if (config.file !== null) streams.push(pino.destination({ dest: config.file, sync: false, mkdir: true, append: true }) as Boom);
  const opts = {
    level: config.level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const logger =
    streams.length === 1 ? pino(opts, streams[0]!) : pino(opts, pino.multistream(streams.map((stream) => ({ stream, level: config.level }))));
  return {
    logger,
    flush: () =>
      Promise.all(
        streams.map(
          (s) =>
            new Promise<void>((resolve) => {
              try {
                s.flush(() => resolve());
              } catch {
                resolve();
              }
            }),
        ),
      ).then(() => undefined),
  };
}
