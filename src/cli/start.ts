/**
 * `celgate start`: flags → config → the gateway (src/gateway/compose.ts), plus the process-level
 * wiring: umask and data directory, signals (SIGINT/SIGTERM stop cleanly, SIGHUP reloads), and a
 * clean shutdown on an uncaught exception.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { CelgateError } from '../errors.js';
import { runGateway } from '../gateway/compose.js';
import { loadConfig, type ConfigOverrides } from '../gateway/config.js';
import { createLogger, type GatewayLogger } from '../gateway/logger.js';

export interface StartFlags {
  config?: string;
  dataDir?: string;
  session?: string;
  profile?: string;
  rules?: string[];
  controlSocket?: string;
  controlTcp?: string;
  controlToken?: string;
  vsockMode?: string;
  vsockHost?: string;
  udsBase?: string;
  portHttp?: number;
  portMcp?: number;
  portDns?: number;
  portExec?: number;
  dnsListen?: string;
  proxy?: string;
  logLevel?: string;
  logFile?: string;
  watch?: boolean;
}

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CelgateError('E_CONFIG', `"${value}" is not a port number`);
  return n;
}

export function flagsToOverrides(f: StartFlags): ConfigOverrides {
  return {
    data_dir: f.dataDir,
    session_id: f.session,
    profile: f.profile,
    rules: f.rules,
    'control.socket': f.controlSocket,
    'control.tcp': f.controlTcp,
    'control.token': f.controlToken ?? process.env.CELGATE_CONTROL_TOKEN,
    'vsock.mode': f.vsockMode,
    'vsock.host': f.vsockHost,
    'vsock.uds_base': f.udsBase,
    'vsock.ports.http': f.portHttp,
    'vsock.ports.mcp': f.portMcp,
    'vsock.ports.dns': f.portDns,
    'vsock.ports.exec': f.portExec,
    'dns.listen': f.dnsListen,
    'http.proxy': f.proxy,
    'log.level': f.logLevel,
    'log.file': f.logFile,
    watch_rules: f.watch === false ? false : undefined,
  };
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description(
      'Start the gateway: load packs, open the session ledger, serve the admin API and the listeners.',
    )
    .option('-c, --config <file>', 'YAML or JSON configuration file')
    .option('--data-dir <dir>', 'data directory (sessions, control socket)')
    .option('--session <id>', 'session id (default: generated, time-sortable)')
    .option('--profile <name|file>', 'balanced, locked, or a pack file')
    .option('--rules <paths...>', 'extra pack files or directories')
    .option('--control-socket <path>', 'admin API Unix socket')
    .option('--control-tcp <host:port>', 'also serve the admin API on loopback TCP (needs a token)')
    .option('--control-token <token>', 'bearer token for --control-tcp (or CELGATE_CONTROL_TOKEN)')
    .option('--vsock-mode <mode>', 'tcp or uds')
    .option('--vsock-host <host>', 'listen host in tcp mode')
    .option('--uds-base <path>', 'hybrid-vsock base path in uds mode')
    .option('--port-http <n>', 'HTTP/HTTPS vsock port', intArg)
    .option('--port-mcp <n>', 'MCP vsock port', intArg)
    .option('--port-dns <n>', 'DNS vsock port', intArg)
    .option('--port-exec <n>', 'guest exec port', intArg)
    .option(
      '--dns-listen <ip:port>',
      'also serve DNS over plain UDP + TCP on this address (dns.listen)',
    )
    .option('--proxy <host:port|off>', 'explicit HTTP proxy on loopback (default 127.0.0.1:8080)')
    .option('--log-level <level>', 'trace, debug, info, warn, error')
    .option('--log-file <file>', 'also append JSON logs to this file')
    .option('--no-watch', 'do not reload when rule files change')
    .action(async (flags: StartFlags) => {
      let log: GatewayLogger | null = null;
      try {
        const config = loadConfig(flags.config, flagsToOverrides(flags));
        // The data directory holds the ledger, the control socket and maybe the log: owner only. The
        // umask makes every file the gateway creates (session.db and its WAL, caches) 0600.
        process.umask(0o077);
        mkdirSync(config.data_dir, { recursive: true, mode: 0o700 });
        chmodSync(config.data_dir, 0o700);
        if (config.log.file !== null)
          mkdirSync(dirname(resolve(config.log.file)), { recursive: true, mode: 0o700 });
        log = createLogger(config.log, { pid: process.pid });
        const gw = await runGateway(config, log);
        const stop = (signal: string) => {
          gw.shutdown(signal).then(
            () => process.exit(0),
            (err: unknown) => {
              log?.logger.fatal({ err: (err as Error).message }, 'shutdown failed');
              void log?.flush().finally(() => process.exit(1));
            },
          );
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGHUP', () => gw.reload('sighup'));
        // A bug anywhere must not lose queued ledger rows: log it, shut down cleanly, exit non-zero.
        process.on('uncaughtException', (err) => {
          log?.logger.fatal(
            { err: err.message, stack: err.stack },
            'uncaught exception; shutting down',
          );
          void gw.shutdown('uncaughtException').finally(() => process.exit(70));
        });
      } catch (err) {
        const e = err as Error & { code?: string };
        if (log !== null) {
          log.logger.fatal({ code: e.code, err: e.message }, 'start failed');
          await log.flush();
        }
        process.stderr.write(`celgate start: ${e.code ?? 'E_INTERNAL'}: ${e.message}\n`);
        process.exit(2);
      }
    });
}
