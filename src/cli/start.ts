/**
 * `celgate start` — the composition root. Loads config and packs, opens the session ledger, builds
 * the one EventSink (ledger + counters + log line), starts the admin API and then the transport
 * services, and shuts everything down cleanly on SIGINT/SIGTERM (stop accepting, drain, flush the
 * ledger, summary line). SIGHUP, POST /v1/reload and rule-file changes reload the packs. This file
 * wires parts together; it parses no protocol and makes no decision.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  watch,
  type FSWatcher,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CelgateError, formatIssue } from '../errors.js';
import { DecisionCounters } from '../control/counters.js';
import { LiveReport } from '../control/live-report.js';
import { createMetrics } from '../control/metrics.js';
import { createPolicyPort, type LivePolicyPort } from '../control/policy-port.js';
import { coreRoutes } from '../control/routes.js';
import { Router, startControlServer } from '../control/server.js';
import { openLedgerReadOnly, type Db } from '../store/schema.js';
import { LedgerWriter } from '../store/writer.js';
import { loadConfig, sessionPaths, type ConfigOverrides, type GatewayConfig } from './config.js';
import { createLogger, type GatewayLogger } from './logger.js';
import { FanoutSink } from './sink.js';
import type { SecurityEvent } from '../events/index.js';
import { startExecService } from './guest-commands.js';
import { irRoutes, loadDetectionPacks } from './ir-commands.js';
import { CorrelatingSink } from '../detection/live.js';
import type { IrPack } from '../detection/types.js';
import { startMcpFromConfig } from '../transport/mcp/config.js';
import { startDnsFromConfig } from '../transport/dns/config.js';
import { startHttpFromConfig } from '../transport/http/config.js';
import { startExplicitProxyFromConfig } from '../transport/http/proxy-config.js';
import { loadInterceptionCerts, startupLines } from './ca-commands.js';
import { FleetMember } from '../fleet/gateway.js';
import { SecretStore } from '../transport/secrets.js';
import { SECRET_PLACEHOLDER_PREFIX } from '../policy/secrets.js';

export { CELGATE_VERSION } from '../version.js';
import { CELGATE_VERSION } from '../version.js';
/**
 * Whether no pack file under `paths` was modified within the last WATCH_DEBOUNCE_MS: a file a slow
 * writer is still writing is not reloaded yet (the watcher looks again after the debounce).
 */
function packFilesStable(paths: readonly string[]): boolean {
  const now = Date.now();
  for (const p of paths) {
    let files: string[];
    try {
      files = statSync(p).isDirectory()
        ? readdirSync(p)
            .filter((f) => /\.ya?ml$/.test(f))
            .map((f) => join(p, f))
        : [p];
    } catch {
      continue;
    }
    for (const f of files) {
      try {
        if (now - statSync(f).mtimeMs < WATCH_DEBOUNCE_MS) return false;
      } catch {
        /* gone between readdir and stat: the reload reports it */
      }
    }
  }
  return true;
}

/** Rule-file changes within this window cause one reload. */
export const WATCH_DEBOUNCE_MS = 250;
/** Longest a clean shutdown waits for services to drain before closing the ledger anyway. */
export const SHUTDOWN_DRAIN_MS = 5_000;

export type { Service, ServiceDeps } from './service.js';
import type { Service, ServiceDeps } from './service.js';

/**
 * The config with secret placeholders in the headers of MCP Streamable HTTP servers replaced by
 * their values, for servers whose host the secret belongs to; any other placeholder stops start.
 */
export function withMcpSecrets(config: GatewayConfig, secrets: SecretStore): GatewayConfig {
  if (secrets.size === 0 || config.mcp.servers.every((s) => s.headers === undefined)) return config;
  const servers = config.mcp.servers.map((s) => {
    if (s.url === undefined || s.headers === undefined) return s;
    const u = new URL(s.url);
    const host = u.hostname.toLowerCase();
    const scheme = u.protocol.replace(/:$/, '');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.headers)) {
      const next = secrets.substitute(v, host, scheme);
      if (next.includes(SECRET_PLACEHOLDER_PREFIX)) {
        throw new CelgateError(
          'E_CONFIG',
          `mcp.servers[${s.id}].headers.${k}: a secret placeholder there does not belong to ${host} (or would go out without TLS), or names an unknown secret`,
        );
      }
      headers[k] = next;
    }
    return { ...s, headers };
  });
  return { ...config, mcp: { ...config.mcp, servers } };
}

/** Locates the package root (the folder with rules/), from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** Pack paths for a config: the profile preset (or file) first, then `rules`. */
export function packPaths(config: GatewayConfig): string[] {
  const profile = ['balanced', 'locked'].includes(config.profile)
    ? join(packageRoot(), 'rules', `${config.profile}.yaml`)
    : resolve(config.profile);
  return [profile, ...config.rules.map((p) => resolve(p))];
}

export interface RunningGateway {
  config: GatewayConfig;
  listeners: Record<string, string>;
  sessionDir: string;
  sessionDb: string;
  policy: LivePolicyPort;
  reload(reason: string): void;
  shutdown(signal: string): Promise<void>;
}

export async function runGateway(
  config: GatewayConfig,
  log: GatewayLogger,
): Promise<RunningGateway> {
  const logger = log.logger;
  const startedMs = Date.now();
  const { sessionDir, sessionDb } = sessionPaths(config);
  const paths = packPaths(config);
  // Fleet packs (docs/fleet.md) join the local packs on every reload; the last accepted set is
  // cached so a start without NATS still enforces it.
  const fleet = config.fleet === null ? null : new FleetMember(config.fleet, config.data_dir);
  // Secret values are read now: a missing variable or unreadable file stops start, naming the secret.
  const secrets = SecretStore.load(config.secrets);
  let onSecretsReload = (_reason: string): void => {};
  const cachedFleetPacks = fleet?.policy.loadCache() ?? 0;
  let correlationPacks: IrPack[] = [];
  let correlating: CorrelatingSink | undefined;
  const policy = createPolicyPort({
    packPaths: paths,
    // Detection packs: rules join the registry; their correlations go to the correlating sink.
    extraRules: () => {
      const r = loadDetectionPacks(config.detection);
      if (!r.ok) return r;
      correlationPacks = r.value.packs;
      correlating?.replace(correlationPacks);
      return { ok: true, value: r.value.definitions };
    },
    ...(fleet === null ? {} : { extraPacks: () => fleet.policy.packTexts() }),
    onReload: (reason) => onSecretsReload(reason),
    // Rules installed, changed or deleted through the API survive a restart (docs/control-api.md).
    overlayFile: join(config.data_dir, 'runtime-rules.json'),
  });
  let first = policy.reload('start');
  if (!first.ok && cachedFleetPacks > 0) {
    fleet!.policy.dropCache(
      first.issues.map((i) => `${i.file ?? ''} ${i.path}: ${i.message}`).join('; '),
    );
    logger.error(
      { issues: first.issues.slice(0, 20) },
      'fleet: the cached fleet packs do not load; starting with the local packs only',
    );
    first = policy.reload('start');
  }
  if (!first.ok) {
    throw new CelgateError(
      'E_RULE_INVALID',
      `cannot load rule packs: ${first.issues.map(formatIssue).join('; ')}`,
      {
        details: { issues: first.issues },
      },
    );
  }
  const ledger = new LedgerWriter(
    sessionDb,
    {
      session_id: config.session_id,
      profile: config.profile,
      celgate_version: CELGATE_VERSION,
      config: {
        ...config,
        control: { ...config.control, token: config.control.token === null ? null : '[redacted]' },
      },
    },
    { minFreeBytes: config.ledger.min_free_bytes },
  );
  ledger.onError = (err) => logger.error({ err: err.message }, 'ledger batch failed');
  const counters = new DecisionCounters();
  const sink = new FanoutSink({
    counters,
    ledger,
    logger,
    infoLine: log.infoLine,
    onFailure: config.ledger.on_failure,
  });
  // Correlations (docs/detection-ir.md) see every recorded decision's findings, live.
  correlating = new CorrelatingSink(sink);
  correlating.replace(correlationPacks);
  let readDb: Db | null = null;
  const listeners: Record<string, string> = {};
  fleet?.start({
    sessionId: config.session_id,
    sessionDb,
    dataDir: config.data_dir,
    version: CELGATE_VERSION,
    log: logger,
    ledger,
    reload: (reason) => policy.reload(reason),
    generation: () => policy.generation(),
  });
  onSecretsReload = (reason) => {
    if (secrets.size === 0 || reason === 'start') return;
    // File-sourced secrets are read again; a secret that cannot be read keeps its value.
    const r = secrets.reload();
    if (r.changed.length > 0) logger.info({ reason, secrets: r.changed }, 'secrets reloaded');
    for (const problem of r.problems)
      logger.error({ reason, problem }, 'secret not reloaded; the previous value stays');
  };
  // The live report page's aggregation runs in a worker thread, off the event loop (docs/report.md).
  const liveReport = new LiveReport(sessionDb);
  const router = new Router();
  router.add(
    ...coreRoutes({
      session: {
        session_id: config.session_id,
        session_dir: sessionDir,
        session_db: sessionDb,
        profile: config.profile,
        started_ms: startedMs,
      },
      policy,
      counters,
      sink: correlating,
      ledger: () => ledger.stats(),
      flushLedger: () => ledger.flush(),
      readDb: () => (readDb ??= openLedgerReadOnly(sessionDb)),
      listeners: () => ({ ...listeners }),
      metrics: createMetrics({
        counters,
        policy,
        ledger: () => ledger.stats(),
        ledgerFailures: () => ({
          append_errors: sink.ledgerErrors,
          refused_events: sink.ledgerRefusals,
        }),
      }),
      notReady: () =>
        config.ledger.on_failure === 'fail_open' ? null : ledger.unavailableReason(),
      report: () => liveReport.data(),
      health: () => ({
        correlations: correlating!.stats(),
        ...(fleet === null ? {} : { fleet: fleet.health() }),
      }),
    }),
  );
  router.add(...irRoutes({ sessionDb, dataDir: config.data_dir }));
  const control = await startControlServer({
    socket: config.control.socket,
    tcp: config.control.tcp,
    token: config.control.token,
    allowNonLoopback: config.control.allow_non_loopback,
    router,
  });
  Object.assign(listeners, control.addresses);

  // ------------------------------------------------------------------------------------------
  // Transport services. Each area adds one entry: `await startX(options, deps)` returning a
  // Service ({name, addresses, routes?, close}). Keep the order: listeners start after the control
  // plane and the ledger, and close before them.
  // The engine, with its generation for fail-closed decisions; every transport decides through the
  // enforcement primitive (src/events/enforce.ts), which refuses while the sink cannot record.
  const decider = {
    decide: (e: SecurityEvent) => policy.engine.decide(e),
    generation: () => policy.generation(),
  };
  const deps: ServiceDeps = {
    config,
    decider,
    engine: policy.engine,
    registry: policy.registry,
    sink: correlating,
    logger,
    policy,
    sessionDir,
    sessionDb,
  };
  const services: Service[] = [];
  const startService = async (make: (d: ServiceDeps) => Promise<Service>) => {
    let s: Service;
    try {
      s = await make(deps);
    } catch (err) {
      // Fail closed and leave nothing behind: stop what started, flush and close the ledger.
      await Promise.allSettled(services.map((x) => x.close()));
      await control.close();
      await fleet?.close();
      ledger.close();
      throw err;
    }
    services.push(s);
    for (const w of s.warnings ?? []) logger.warn({ service: s.name }, w);
    Object.assign(listeners, s.addresses);
    if (s.routes !== undefined) router.add(...s.routes);
  };
  void startService; // used by the transport entries below
  // e.g. await startService((d) => startHttpService(d));
  await startService((d) => startExecService(d));
  await startService((d) => startMcpFromConfig(withMcpSecrets(d.config, secrets), d));
  await startService((d) =>
    startDnsFromConfig(d.config.dns, {
      session_id: d.config.session_id,
      profile_id: d.config.profile,
      vsock: {
        mode: d.config.vsock.mode,
        host: d.config.vsock.host,
        uds_base: d.config.vsock.uds_base,
        port: d.config.vsock.ports.dns,
      },
      decider: d.decider,
      sink: d.sink,
      logger: d.logger,
    }),
  );
  // One CA and one leaf cache for both HTTP entry points (vsock interception and explicit proxy).
  let interception = null as Awaited<ReturnType<typeof loadInterceptionCerts>> | null;
  const certs = async () =>
    (interception ??= await loadInterceptionCerts(config.http.ca_dir)).certs;
  await startService(async (d) =>
    startHttpFromConfig(d.config, {
      decider: d.decider,
      engine: d.engine,
      sink: d.sink,
      certs: await certs(),
      secrets,
    }),
  );
  await startService(async (d) =>
    startExplicitProxyFromConfig(d.config, {
      decider: d.decider,
      engine: d.engine,
      sink: d.sink,
      certs: await certs(),
      secrets,
    }),
  );
  // ------------------------------------------------------------------------------------------

  let debounce: NodeJS.Timeout | null = null;
  const watchers: FSWatcher[] = [];
  const reload = (reason: string) => {
    const out = policy.reload(reason);
    if (out.ok)
      logger.info(
        { reason, generation: out.value.generation, rules: out.value.rules },
        'rules reloaded',
      );
    else
      logger.error({ reason, issues: out.issues }, 'reload refused; the running plan is unchanged');
  };
  if (config.watch_rules) {
    // Directories are watched, not files: an editor's atomic save (write a temp file, rename it over
    // the pack) replaces the file, and a watch on the old file would never fire again.
    const watched = [...paths, ...config.detection.map((d) => resolve(d))];
    const dirs = new Map<string, Set<string> | null>();
    for (const p of watched) {
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        /* a missing file: watch its directory for it to appear */
      }
      if (isDir) dirs.set(p, null);
      else {
        const names = dirs.get(dirname(p)) ?? new Set<string>();
        if (names !== null) names.add(basename(p));
        if (!dirs.has(dirname(p)) || dirs.get(dirname(p)) !== null) dirs.set(dirname(p), names);
      }
    }
    const schedule = () => {
      if (debounce !== null) clearTimeout(debounce);
      debounce = setTimeout(() => {
        debounce = null;
        // Reload only files that have stopped changing: a slow writer is read whole.
        if (!packFilesStable(watched)) return schedule();
        reload('watch');
      }, WATCH_DEBOUNCE_MS);
    };
    for (const [dir, names] of dirs) {
      try {
        watchers.push(
          watch(dir, { persistent: false }, (_event, name) => {
            if (names !== null && (name === null || !names.has(String(name)))) return;
            if (names === null && name !== null && !/\.ya?ml$/.test(String(name))) return;
            schedule();
          }),
        );
      } catch (err) {
        logger.warn({ path: dir, err: (err as Error).message }, 'cannot watch rule path');
      }
    }
  }

  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ signal }, 'shutting down');
      for (const w of watchers) w.close();
      if (debounce !== null) clearTimeout(debounce);
      const drain = Promise.allSettled(services.map((s) => s.close()));
      await Promise.race([drain, new Promise((r) => setTimeout(r, SHUTDOWN_DRAIN_MS).unref())]);
      await control.close();
      await liveReport.close();
      await fleet?.close();
      readDb?.close();
      ledger.close();
      const stats = ledger.stats();
      logger.info(
        {
          session_id: config.session_id,
          session_db: sessionDb,
          duration_ms: Date.now() - startedMs,
          totals: counters.totals(),
          ledger_rows: stats.written,
          ledger_failed_batches: stats.failed_batches,
          ledger_rejected_rows: stats.rejected_rows,
          ledger_errors: sink.ledgerErrors,
          generation: policy.generation(),
          reloads: policy.reloadStats(),
        },
        'summary',
      );
      await log.flush();
    })());

  logger.info(
    {
      listeners,
      session_id: config.session_id,
      session_dir: sessionDir,
      control_socket: config.control.socket,
      generation: policy.generation(),
    },
    'ready',
  );
  log.flushNow(); // whoever waits for "ready" should not wait for the next flush tick
  process.stderr.write(
    `${startupLines({ caCertPath: interception?.ca.certPath ?? null, proxy: listeners.proxy ?? null, sessionDb }).join('\n')}\n`,
  );
  return { config, listeners, sessionDir, sessionDb, policy, reload, shutdown };
}

interface StartFlags {
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
