/**
 * A gateway's membership in a fleet (config `fleet`, docs/fleet.md): one NATS connection for the
 * policy (watch `celgate-packs`, install accepted revisions, report in `celgate-status`) and an
 * exporter worker with its own connection for the event stream. Everything here runs beside
 * enforcement: start never waits for NATS, and with NATS unreachable the gateway enforces its local
 * packs (plus the fleet's last accepted ones, cached) and says so in /v1/health.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Validated } from '../errors.js';
import type { FleetConfig } from './config.js';
import { connectForever } from './connection.js';
import { FleetExporter, type WatermarkSink } from './exporter.js';
import type { ExportState } from './export-worker.js';
import {
  FleetPolicy,
  issueSummary,
  watchPacks,
  type FleetPolicyStatus,
  type FleetReload,
} from './policy-sync.js';

/** How often the status record is rewritten (its age tells `fleet status` a gateway is gone). */
export const STATUS_INTERVAL_MS = 5_000;
/**
 * How often the exporter looks for new ledger rows when it has caught up. Fewer, larger rounds
 * disturb enforcement less: at 50 ms the exporting gateway answered lookups 9–20 % slower than one
 * without export, at 250 ms 1–8 % (bench/fleet.ts, part 3).
 */
export const EXPORT_POLL_MS = 250;
/** Rows read per table per export round. */
export const EXPORT_BATCH = 1024;
/** Revisions of a pack the bucket keeps (history for `fleet rules list`, rollback by hand). */
export const PACKS_HISTORY = 10;

export interface FleetLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a gateway writes under its id in the status bucket. */
export interface GatewayStatus {
  gateway_id: string;
  host: string;
  pid: number;
  session_id: string;
  celgate_version: string;
  started_ms: number;
  updated_ms: number;
  /** False in the last record a gateway writes when it stops. */
  running: boolean;
  generation: number;
  policy: FleetPolicyStatus;
  export: ExportState | null;
}

export interface FleetHealth {
  gateway_id: string;
  servers: string[];
  connected: boolean;
  policy: FleetPolicyStatus;
  export: ExportState | null;
  last_error: string | null;
}

export interface FleetDeps {
  sessionId: string;
  sessionDb: string;
  dataDir: string;
  version: string;
  log: FleetLog;
  ledger: WatermarkSink;
  /** Reloads the policy (local packs + `FleetPolicy.packTexts()`); atomic, refusals keep the running rules. */
  reload: (reason: string) => Validated<FleetReload>;
  generation: () => number;
}

/**
 * Created before the policy port (whose `extraPacks` is `policy.packTexts`), started once the
 * ledger is open.
 */
export class FleetMember {
  readonly policy: FleetPolicy;
  private nc: NatsConnection | null = null;
  private exporter: FleetExporter | null = null;
  private statusKv: KV | null = null;
  private watch: { stop(): void } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private connected = false;
  private lastError: string | null = null;
  private readonly signal = { stopped: false };
  private readonly startedMs = Date.now();
  private deps: FleetDeps | null = null;

  constructor(
    readonly config: FleetConfig,
    dataDir: string,
  ) {
    this.policy = new FleetPolicy(
      config.packs_bucket,
      join(dataDir, 'fleet', `packs-${config.gateway_id}.json`),
    );
  }

  /** Starts connecting and exporting in the background; never waits for NATS. */
  start(deps: FleetDeps): void {
    this.deps = deps;
    if (this.config.export) {
      this.exporter = new FleetExporter(
        {
          auth: this.config,
          gatewayId: this.config.gateway_id,
          sessionDb: deps.sessionDb,
          stream: this.config.stream,
          replicas: this.config.replicas,
          duplicateWindowS: this.config.duplicate_window_s,
          batch: EXPORT_BATCH,
          pollMs: EXPORT_POLL_MS,
        },
        deps.ledger,
        (message) => deps.log.error({ err: message }, 'fleet exporter stopped'),
      );
    }
    void this.connect(deps);
  }

  private async connect(deps: FleetDeps): Promise<void> {
    deps.log.info(
      { servers: this.config.servers, gateway_id: this.config.gateway_id },
      'fleet: connecting to NATS',
    );
    try {
      this.nc = await connectForever(this.config, `celgate-${this.config.gateway_id}`);
    } catch (err) {
      this.lastError = (err as Error).message;
      deps.log.error({ err: this.lastError }, 'fleet: cannot connect to NATS');
      return;
    }
    if (this.signal.stopped) {
      await this.nc.close();
      return;
    }
    this.connected = true;
    deps.log.info({ server: this.nc.getServer() }, 'fleet: connected');
    void (async () => {
      for await (const s of this.nc!.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          deps.log.warn({}, 'fleet: disconnected from NATS; enforcing the running rules');
        } else if (s.type === 'reconnect') {
          this.connected = true;
          deps.log.info({}, 'fleet: reconnected');
          void this.publishStatus();
        }
      }
    })();
    // Buckets: created if missing (same settings on every gateway), else opened.
    while (!this.signal.stopped) {
      try {
        const kvm = new Kvm(this.nc);
        this.statusKv = await kvm.create(this.config.status_bucket, {
          history: 1,
          replicas: this.config.replicas,
        });
        if (this.config.policy) {
          const packs = await kvm.create(this.config.packs_bucket, {
            history: PACKS_HISTORY,
            replicas: this.config.replicas,
          });
          this.watch = await watchPacks(
            packs,
            (set, revision) => this.onPacks(set, revision),
            this.signal,
          );
        }
        this.lastError = null;
        break;
      } catch (err) {
        this.lastError = (err as Error).message;
        deps.log.warn({ err: this.lastError }, 'fleet: cannot open the buckets yet; retrying');
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    void this.publishStatus();
    this.timer = setInterval(() => void this.publishStatus(), STATUS_INTERVAL_MS);
    this.timer.unref();
  }

  private onPacks(set: Parameters<FleetPolicy['apply']>[0], revision: number): void {
    const deps = this.deps!;
    const out = this.policy.apply(set, revision, () => deps.reload('fleet'));
    if (out.ok)
      deps.log.info(
        { revision, packs: set.map((p) => p.key), generation: out.value.generation },
        'fleet: revision installed',
      );
    else
      deps.log.error(
        { revision, issues: out.issues.slice(0, 20), summary: issueSummary(out.issues) },
        'fleet: revision refused; the running rules are unchanged',
      );
    void this.publishStatus();
  }

  private async publishStatus(running = true): Promise<void> {
    const kv = this.statusKv;
    const deps = this.deps;
    if (kv === null || deps === null || !this.connected) return;
    const status: GatewayStatus = {
      gateway_id: this.config.gateway_id,
      host: hostname(),
      pid: process.pid,
      session_id: deps.sessionId,
      celgate_version: deps.version,
      started_ms: this.startedMs,
      updated_ms: Date.now(),
      running,
      generation: deps.generation(),
      policy: this.policy.status(),
      export: this.exporter?.state() ?? null,
    };
    try {
      await kv.put(this.config.gateway_id, JSON.stringify(status));
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }

  health(): FleetHealth {
    return {
      gateway_id: this.config.gateway_id,
      servers: this.config.servers,
      connected: this.connected,
      policy: this.policy.status(),
      export: this.exporter?.state() ?? null,
      last_error: this.lastError,
    };
  }

  async close(): Promise<void> {
    this.signal.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.watch?.stop();
    await this.publishStatus(false).catch(() => {});
    await this.exporter?.close();
    await this.nc?.close().catch(() => {});
  }
}
