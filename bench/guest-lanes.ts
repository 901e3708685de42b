/**
 * Guest-originated enforcement lanes (issue #7, DESIGN §10). Each lane: start the real gateway,
 * create a guest namespace, install a uniquely named block rule through the admin API, drive N
 * blocked operations from real clients inside the guest, then ASSERT before recording any time —
 * the client saw the denial, the rule's counter moved by exactly the number of operations,
 * session.db holds that many rows with distinct event ids and the rule id, and the gateway's log
 * lines name the rule. A lane whose assertions fail reports no times. `broken: true` installs the
 * rule with a condition that cannot match, which must fail the assertions.
 *
 * Owns: the lane runner and the per-lane drivers in bench/guest-lane-*.ts. Must not: judge gates.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
  type Summary,
} from './artifact.js';
import { startBenchGateway, type BenchGateway } from './guest-gateway.js';
import { GuestNamespace, netnsAvailability } from './guest-netns.js';

export const LANE_NAMES = ['process', 'http', 'dns', 'mcp'] as const;
export type LaneName = (typeof LANE_NAMES)[number];
/** How long the lane waits for the batched ledger to show the rows. */
export const LEDGER_WAIT_MS = 5_000;

/**
 * Unmeasured operations per lane before the measured ones. Each lane starts a fresh gateway, bridge
 * and client, so the first operations run through V8's interpreter and baseline tiers; a gateway in
 * service is long-running and JIT-compiled. 20 reaches that steady state on the 2-core benchmark
 * machine (DNS lane, N=30: mean 1.6–2.6 ms with 2 warm-ups, 0.85–1.0 ms with 20, same load).
 * `--warmup 0` measures the cold path.
 */
export const DEFAULT_WARMUP = 20;

export interface LaneOptions {
  runs: number;
  /** Warm-up operations, blocked by a separate rule the measured traffic never matches (default 0). */
  warmup?: number;
  /** Install the rule with a condition that cannot match (must fail the assertions). */
  broken: boolean;
  /** Write an artifact (default true); the CI test sets false. */
  write?: boolean;
}

export interface LaneContext {
  gw: BenchGateway;
  guest: GuestNamespace;
  workDir: string;
  runs: number;
  ruleId: string;
  /** A unique lowercase token for names/markers of this lane run. */
  tag: string;
  /** Warm-up operations to run first (unmeasured; they match only the warm-up rule). */
  warmup: number;
  /** Token for warm-up names/markers; neither contains the other's token. */
  warmTag: string;
}

export interface LaneDrive {
  /** Raw samples (ms) per measured quantity. */
  results: Record<string, number[]>;
  /** Client-side checks: the denial reached every client. */
  checks: AssertionResult[];
  /** How many rule-matching events the lane produced (the counter must move by exactly this). */
  events: number;
  notes?: Record<string, unknown>;
}

export interface LaneSpec {
  name: LaneName;
  /** The ledger table whose rows must carry the rule id. */
  table: string;
  /** Extra gateway configuration (MCP upstreams, certificate dir …). */
  gatewayConfig?(workDir: string): Record<string, unknown>;
  /** The rule's CEL condition; `broken` returns one that cannot match the lane's traffic. */
  condition(tag: string, broken: boolean): string;
  /** The warm-up rule's condition: matches the warm-up traffic (made with `warmTag`) and nothing measured. */
  warmCondition(warmTag: string): string;
  drive(ctx: LaneContext): Promise<LaneDrive>;
}

const check = (name: string, ok: boolean, detail?: string): AssertionResult =>
  detail === undefined ? { name, ok } : { name, ok, detail };

async function waitFor<T>(read: () => T, done: (v: T) => boolean, ms: number): Promise<T> {
  const until = Date.now() + ms;
  let v = read();
  while (!done(v) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    v = read();
  }
  return v;
}

/** Checks the server side after a drive: counter, ledger rows, log lines. */
async function serverChecks(
  ctx: LaneContext,
  spec: LaneSpec,
  before: number,
  expected: number,
): Promise<AssertionResult[]> {
  const out: AssertionResult[] = [];
  const rule = await ctx.gw.api('GET', `/v1/rules/${ctx.ruleId}`);
  const matches = Number(rule.json?.counters?.matches ?? Number.NaN);
  out.push(
    check(
      `rule counter moved by ${expected}`,
      matches - before === expected,
      `before ${before}, after ${matches}`,
    ),
  );
  const rows = await waitFor(
    () => ctx.gw.ledgerRows(spec.table, ctx.ruleId),
    (r) => r.length >= expected,
    LEDGER_WAIT_MS,
  );
  const ids = new Set(rows.map((r) => r.event_id));
  out.push(
    check(
      `session.db ${spec.table} has ${expected} rows with the rule id`,
      rows.length === expected,
      `${rows.length} rows`,
    ),
  );
  out.push(
    check(
      `session.db rows have ${expected} distinct event ids`,
      ids.size === expected,
      `${ids.size} distinct`,
    ),
  );
  // The lane table was already waited for; security_events is written in the same batches.
  const sec = await waitFor(
    () => ctx.gw.ledgerRows('security_events', ctx.ruleId),
    (r) => r.length >= expected,
    rows.length >= expected ? LEDGER_WAIT_MS : 0,
  );
  out.push(
    check(
      `session.db security_events has ${expected} blocked rows for the rule`,
      sec.length === expected && sec.every((r) => r.decision === 'block'),
      `${sec.length} rows`,
    ),
  );
  // Log lines are written in batches (at most every 50 ms), like the ledger: wait for them the same way.
  const named = () =>
    ctx.gw
      .logs()
      .filter((l) => l.msg === 'decision' && l.rule_id === ctx.ruleId && l.decision === 'block');
  const logLines = await waitFor(named, (l) => l.length >= expected, LEDGER_WAIT_MS);
  out.push(
    check(
      `gateway log has ${expected} decision lines naming the rule`,
      logLines.length === expected,
      `${logLines.length} lines`,
    ),
  );
  return out;
}

/** Runs one lane end to end and returns (and by default writes) its artifact. Never throws. */
export async function runLane(spec: LaneSpec, opts: LaneOptions): Promise<Artifact> {
  const write = (a: Parameters<typeof writeArtifact>[0]) =>
    opts.write === false ? { ...a, path: undefined } : writeArtifact(a);
  const base = { kind: 'guest' as const, name: spec.name, runs: opts.runs };
  const avail = netnsAvailability();
  if (!avail.ok)
    return write({
      ...base,
      results: {},
      status: 'skipped',
      skip_reason: avail.reason,
    }) as Artifact;
  const tag = `${spec.name}-${randomBytes(4).toString('hex')}`;
  const warmTag = `warmup-${randomBytes(4).toString('hex')}`;
  const warmup = opts.warmup ?? 0;
  const ruleId = `bench.${tag}`;
  const workDir = mkdtempSync(join(tmpdir(), `celgate-lane-${spec.name}-`));
  let gw: BenchGateway | null = null;
  let guest: GuestNamespace | null = null;
  const assertions: AssertionResult[] = [];
  let results: Record<string, Summary> = {};
  let notes: Record<string, unknown> = { rule_id: ruleId, broken: opts.broken };
  try {
    gw = await startBenchGateway(workDir, spec.gatewayConfig?.(workDir) ?? {});
    guest = await GuestNamespace.create({ udsBase: gw.udsBase, workDir: join(workDir, 'guest') });
    const condition = spec.condition(tag, opts.broken);
    notes.condition = condition;
    const put = await gw.api('PUT', `/v1/rules/${ruleId}`, {
      description: `celgate bench: block the ${spec.name} lane's operations`,
      condition,
      action: 'block',
      priority: -1000,
      mode: 'enforce',
      reason: `blocked by the celgate ${spec.name} benchmark rule`,
      enabled: true,
    });
    assertions.push(
      check(
        'rule installed through the admin API',
        put.status === 200 || put.status === 201,
        `${put.status} ${put.text.slice(0, 300)}`,
      ),
    );
    if (warmup > 0) {
      const warm = await gw.api('PUT', `/v1/rules/bench.${warmTag}`, {
        description: 'celgate bench: block warm-up operations (never the measured ones)',
        condition: spec.warmCondition(warmTag),
        action: 'block',
        priority: -1000,
        mode: 'enforce',
        reason: 'blocked by the celgate benchmark warm-up rule',
        enabled: true,
      });
      assertions.push(
        check(
          'warm-up rule installed',
          warm.status === 200 || warm.status === 201,
          warm.text.slice(0, 300),
        ),
      );
      notes.warmup = warmup;
    }
    if (put.status === 200 || put.status === 201) {
      const before = Number(
        (await gw.api('GET', `/v1/rules/${ruleId}`)).json?.counters?.matches ?? 0,
      );
      const ctx: LaneContext = {
        gw,
        guest,
        workDir,
        runs: opts.runs,
        ruleId,
        tag,
        warmup,
        warmTag,
      };
      const drive = await spec.drive(ctx);
      assertions.push(...drive.checks);
      assertions.push(...(await serverChecks(ctx, spec, before, drive.events)));
      notes = { ...notes, ...drive.notes, events: drive.events };
      if (assertions.every((a) => a.ok))
        results = Object.fromEntries(
          Object.entries(drive.results).map(([k, v]) => [k, summarize(v)]),
        );
    }
  } catch (err) {
    assertions.push(
      check('lane ran to completion', false, (err as Error).stack?.slice(0, 1500) ?? String(err)),
    );
  } finally {
    if (guest !== null) {
      const log = guest.bridgeLog();
      if (log !== '') notes.bridge_stderr = log.slice(-2000);
      await guest.destroy();
    }
    if (gw !== null) {
      if (!assertions.every((a) => a.ok)) notes.gateway_stderr = gw.stderr().slice(-2000);
      await gw.stop();
    }
    rmSync(workDir, { recursive: true, force: true });
  }
  const status = assertions.length > 0 && assertions.every((a) => a.ok) ? 'passed' : 'failed';
  return write({ ...base, results, assertions, status, notes }) as Artifact;
}
