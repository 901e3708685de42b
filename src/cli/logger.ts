/**
 * The gateway's structured logger (pino, JSON lines on stdout, optionally also a file). Owns log
 * formatting and flushing; it makes no decisions and reads no state.
 */
import { pino, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger } from 'pino';

export interface GatewayLogger {
  logger: Logger;
  /** Writes out anything buffered; call before exit. */
  flush(): void;
}

export function createLogger(config: LogConfig, base: Record<string, unknown> = {}): GatewayLogger {
  const stdout = pino.destination({ dest: 1, sync: true });
  const options = {
    level: config.level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (config.file === null) {
    return { logger: pino(options, stdout), flush: () => stdout.flushSync() };
  }
  const file = pino.destination({ dest: config.file, sync: true, mkdir: true, append: true });
  const logger = pino(options, pino.multistream([{ stream: stdout, level: config.level }, { stream: file, level: config.level }]));
  return {
    logger,
    flush: () => {
      stdout.flushSync();
      file.flushSync();
    },
  };
}
