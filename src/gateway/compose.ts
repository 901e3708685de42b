/**
 * The composition root: `runGateway` loads the packs, opens the session ledger, builds the one
 * EventSink (ledger + counters + log line), starts the admin API, then the transports
 * (services.ts), watches the rule files, and shuts everything down in reverse order (stop
 * accepting, drain, flush the ledger, summary line). It wires parts together; it parses no
 * protocol and makes no decision. `celgate start` (src/cli/start.ts) is its command-line front.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DecisionCounters } from '../control/counters.js';
import { LiveReport } from '../control/live-report.js';
import { createMetrics } from '../control/metrics.js';
import { ApprovalBroker, approvalRoutes } from '../control/approvals.js';
import { MIN_PRIORITY } from '../policy/types.js';
import { createPolicyPort, type LivePolicyPort } from '../control/policy-port.js';
import { coreRoutes } from '../control/routes.js';
import { Router, startControlServer } from '../control/server.js';
import { CelgateError, formatIssue } from '../errors.js';
import type { EventType, SecurityEvent } from '../events/index.js';
import { FleetMember } from '../fleet/gateway.js';
import { openLedgerReadOnly, type Db } from '../store/schema.js';
import { LedgerWriter } from '../store/writer.js';
import { SecretStore } from '../transport/secrets.js';
import { CELGATE_VERSION } from '../version.js';
import { loadInterceptionCerts, startupLines } from './certs.js';
import { sessionPaths, type GatewayConfig } from './config.js';
import { irRoutes, loadDetectionPacks } from './detection.js';
import { CorrelatingSink } from '../detection/live.js';
import type { IrPack } from '../detection/types.js';
import type { GatewayLogger } from './logger.js';
import type { Service, ServiceDeps } from './service.js';
import { startTransport, TRANSPORTS } from './services.js';
import { FanoutSink } from './sink.js';
import { watchRulePaths } from './watch.js';

/** Longest a clean shutdown waits for services to drain before closing the ledger anyway. */
export const SHUTDOWN_DRAIN_MS = 5_000;

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
  // `ask` rules wait for a human answer through the admin API (docs/approvals.md).
  const approvals = new ApprovalBroker({
    config: config.approvals,
    remember: (r) => {
      const out = policy.putSessionRule(r.id, {
        condition: r.condition,
        action: r.action,
        priority: MIN_PRIORITY,
        description: r.description,
        reason: r.reason,
        tags: ['approval'],
      });
      if (out.ok)
        logger.info({ rule: r.id, action: r.action }, 'approval remembered for the session');
      return out.ok ? null : out.issues.map((i) => i.message).join('; ');
    },
    ruleReason: (id) => {
      const r = policy.getRule(id);
      return r === undefined ? undefined : r.reason || r.description || undefined;
    },
  });
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
        approvals: () => ({ ...approvals.counts, pending: approvals.pendingCount }),
      }),
      notReady: () =>
        config.ledger.on_failure === 'fail_open' ? null : ledger.unavailableReason(),
      report: () => liveReport.data(),
      health: () => ({
        approvals: approvals.health(),
        correlations: correlating!.stats(),
        ...(fleet === null ? {} : { fleet: fleet.health() }),
      }),
    }),
  );
  router.add(...irRoutes({ sessionDb, dataDir: config.data_dir }));
  router.add(...approvalRoutes(approvals));
  const control = await startControlServer({
    socket: config.control.socket,
    tcp: config.control.tcp,
    token: config.control.token,
    allowNonLoopback: config.control.allow_non_loopback,
    router,
  });
  Object.assign(listeners, control.addresses);

  // Transports (services.ts) start after the control plane and the ledger, and close before them.
  // The engine, with its generation for fail-closed decisions; every transport decides through the
  // enforcement primitive (src/events/enforce.ts), which refuses while the sink cannot record.
  const decider = {
    decide: (e: SecurityEvent) => policy.engine.decide(e),
    generation: () => policy.generation(),
    // An `ask` is held for an approver (`hold`); the fast HTTP paths hand requests an `ask` rule
    // could decide to the path that can wait (`mayAsk`).
    hold: approvals.hold,
    mayAsk: (t: EventType) => approvals.holding() && policy.engine.hasAsk(t),
  };
  // One CA and one leaf cache for both HTTP entry points (vsock interception and explicit proxy).
  const interception: { loaded: Awaited<ReturnType<typeof loadInterceptionCerts>> | null } = {
    loaded: null,
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
    secrets,
    certs: async () =>
      (interception.loaded ??= await loadInterceptionCerts(config.http.ca_dir)).certs,
  };
  const services: Service[] = [];
  for (const t of TRANSPORTS) {
    let s: Service;
    try {
      s = await startTransport(t, deps);
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
  }

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
  const watcher = config.watch_rules
    ? watchRulePaths([...paths, ...config.detection.map((d) => resolve(d))], reload, logger)
    : null;

  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ signal }, 'shutting down');
      watcher?.close();
      // Held requests are blocked now ("the gateway stopped"), so their connections can drain.
      approvals.close();
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
    `${startupLines({ caCertPath: interception.loaded?.ca.certPath ?? null, proxy: listeners.proxy ?? null, sessionDb }).join('\n')}\n`,
  );
  return { config, listeners, sessionDir, sessionDb, policy, reload, shutdown };
}
