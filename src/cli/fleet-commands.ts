/**
 * `celgate fleet …`: the fleet's shared policy and event stream on NATS JetStream (docs/fleet.md).
 * `rules install|delete|list|get` edit the `celgate-packs` bucket (packs are validated here first,
 * exactly as a gateway validates them); `status` reads `celgate-status`; `events` and `stats` read
 * the `CELGATE_EVENTS` stream. Composition only: NATS access lives in src/fleet.
 */
import type { Command } from 'commander';
import { action as commandAction } from './admin-client.js';
import { Kvm, type KV } from '@nats-io/kv';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CelgateError, formatIssue } from '../errors.js';
import { readFileSync } from 'node:fs';
import { MAX_PACK_BYTES, parsePack } from '../policy/packs.js';
import { parseFleetConfig, type FleetConfig } from '../fleet/config.js';
import { connectOnce } from '../fleet/connection.js';
import {
  DEFAULT_PACKS_BUCKET,
  DEFAULT_STATUS_BUCKET,
  DEFAULT_STREAM,
  PACK_KEY_PATTERN,
} from '../fleet/names.js';
import { fleetStats, parseSince, readStream, type StreamMessage } from '../fleet/query.js';
import type { GatewayStatus } from '../fleet/gateway.js';
import { loadConfig } from '../gateway/config.js';

/** A status record older than this is shown as stale (gateways rewrite it every 5 s). */
export const STALE_MS = 15_000;

export interface NatsFlags {
  nats?: string;
  config?: string;
  token?: string;
  user?: string;
  password?: string;
  creds?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  packsBucket?: string;
  statusBucket?: string;
  stream?: string;
}

/** Adds the connection flags every fleet command takes. */
export function withNats(cmd: Command): Command {
  return cmd
    .option(
      '--nats <urls>',
      "NATS server URL(s), comma-separated (or CELGATE_NATS, or the config file's fleet.nats)",
    )
    .option(
      '-c, --config <file>',
      'take the fleet section (servers, credentials, names) from this config file',
    )
    .option('--token <token>', 'NATS token')
    .option('--user <user>', 'NATS user (with --password)')
    .option('--password <password>', 'NATS password')
    .option('--creds <file>', 'NATS .creds file')
    .option('--tls-ca <file>', "CA for the NATS servers' certificates")
    .option('--tls-cert <file>', 'client certificate (with --tls-key)')
    .option('--tls-key <file>', 'client key')
    .option('--packs-bucket <name>', `KV bucket of packs (default ${DEFAULT_PACKS_BUCKET})`)
    .option(
      '--status-bucket <name>',
      `KV bucket of gateway status (default ${DEFAULT_STATUS_BUCKET})`,
    )
    .option('--stream <name>', `event stream (default ${DEFAULT_STREAM})`);
}

/** The fleet settings of a command: the config file's `fleet` section, overridden by flags. */
export function fleetSettings(f: NatsFlags): FleetConfig {
  const base = f.config === undefined ? null : loadConfig(f.config).fleet;
  const nats = f.nats ?? process.env.CELGATE_NATS ?? base?.servers.join(',');
  if (nats === undefined)
    throw new CelgateError(
      'E_CONFIG',
      'which NATS? give --nats nats://HOST:4222 (or CELGATE_NATS, or -c with a fleet section)',
    );
  const tls =
    f.tlsCa !== undefined || f.tlsCert !== undefined
      ? { ca: f.tlsCa ?? null, cert: f.tlsCert ?? null, key: f.tlsKey ?? null }
      : base?.tls === null || base === null
        ? undefined
        : base.tls;
  const raw: Record<string, unknown> = {
    nats,
    gateway_id: base?.gateway_id ?? 'cli',
    ...(f.token !== undefined
      ? { token: f.token }
      : base?.token != null
        ? { token: base.token }
        : {}),
    ...(f.user !== undefined
      ? { user: f.user, password: f.password }
      : base?.user != null
        ? { user: base.user, password: base.password }
        : {}),
    ...(f.creds !== undefined
      ? { creds: f.creds }
      : base?.creds != null
        ? { creds: base.creds }
        : {}),
    ...(tls === undefined ? {} : { tls }),
    packs_bucket: f.packsBucket ?? base?.packs_bucket,
    status_bucket: f.statusBucket ?? base?.status_bucket,
    stream: f.stream ?? base?.stream,
  };
  for (const k of Object.keys(raw)) if (raw[k] === undefined) delete raw[k];
  return parseFleetConfig(raw, 'command line')!;
}

/** Longest one NATS operation of a command may take before the command fails naming it. */
export const STEP_TIMEOUT_MS = 15_000;

/** Awaits `p`, failing with the step's name when NATS does not answer in time. */
async function step<T>(name: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CelgateError(
            'E_TIMEOUT',
            `${name}: NATS did not answer within ${STEP_TIMEOUT_MS} ms`,
          ),
        ),
      STEP_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function withConnection<T>(
  f: NatsFlags,
  body: (nc: NatsConnection, cfg: FleetConfig) => Promise<T>,
): Promise<T> {
  const cfg = fleetSettings(f);
  const nc = await step(`connect to ${cfg.servers.join(', ')}`, connectOnce(cfg, 'celgate-cli'));
  try {
    return await body(nc, cfg);
  } finally {
    await step('close the connection', nc.close()).catch(() => {});
  }
}

const action = <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  commandAction(fn, 'celgate fleet');

const print = (s: string) => process.stdout.write(`${s}\n`);
const age = (ms: number) =>
  ms < 1_000
    ? `${ms} ms`
    : ms < 120_000
      ? `${Math.round(ms / 1000)} s`
      : `${Math.round(ms / 60_000)} min`;

/** Opens (creating if missing) a bucket, failing by name when NATS does not answer. */
function openBucket(nc: NatsConnection, name: string, history: number): Promise<KV> {
  return step(`open bucket ${name}`, new Kvm(nc).create(name, { history }));
}

/**
 * Every key of a bucket (deleted ones included; their entries read as DEL), from one stream-info
 * request: the KV key iterator runs a consumer that can wait for ever while gateways keep writing.
 */
function keysOf(kv: KV, what: string): Promise<string[]> {
  return step(
    `list ${what}`,
    (async () => {
      const st = await kv.status();
      const bucket = st.bucket;
      const prefix = `$KV.${bucket}.`;
      const info = await (kv as unknown as { jsm: JetStreamManager }).jsm.streams.info(
        `KV_${bucket}`,
        { subjects_filter: `${prefix}>` },
      );
      return Object.keys(info.state.subjects ?? {})
        .filter((subject) => subject.startsWith(prefix))
        .map((subject) => subject.slice(prefix.length))
        .sort();
    })(),
  );
}

async function statuses(kv: KV): Promise<GatewayStatus[]> {
  const out: GatewayStatus[] = [];
  for (const key of await keysOf(kv, 'gateway statuses')) {
    const e = await step(`read the status of ${key}`, kv.get(key));
    if (e === null || e.operation !== 'PUT') continue;
    try {
      out.push(JSON.parse(e.string()) as GatewayStatus);
    } catch {
      // not ours
    }
  }
  return out.sort((a, b) => a.gateway_id.localeCompare(b.gateway_id));
}

/** Waits until every live gateway has applied or refused `revision`; returns one line per gateway. */
async function waitForGateways(
  kv: KV,
  revision: number,
  timeoutMs: number,
): Promise<{ ok: boolean; lines: string[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = Date.now();
    const live = (await statuses(kv)).filter((s) => s.running && now - s.updated_ms < STALE_MS);
    const settled = live.map((s) => ({
      s,
      applied: s.policy.revision >= revision,
      refused: (s.policy.last_error_revision ?? 0) >= revision && s.policy.revision < revision,
    }));
    if (settled.every((x) => x.applied || x.refused) || now >= deadline) {
      const lines = settled.map(({ s, applied, refused }) =>
        applied
          ? `  ${s.gateway_id}: applied (generation ${s.generation})`
          : refused
            ? `  ${s.gateway_id}: REFUSED: ${s.policy.last_error ?? ''}`
            : `  ${s.gateway_id}: no answer within ${timeoutMs} ms (running revision ${s.policy.revision})`,
      );
      if (live.length === 0) lines.push('  (no live gateway reports in the status bucket)');
      return { ok: settled.every((x) => x.applied), lines };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function fleetEventStream(
  f: NatsFlags & { gateway?: string; session?: string; family?: string; since?: string },
  body: (messages: AsyncIterable<StreamMessage>) => Promise<void>,
): Promise<void> {
  const sinceMs = f.since === undefined ? undefined : parseSince(f.since);
  await withConnection(f, (nc, cfg) =>
    body(
      readStream(nc, cfg.stream, {
        gateway: f.gateway,
        session: f.session,
        family: f.family,
        sinceMs,
      }),
    ),
  );
}

export function registerFleetCommands(program: Command): void {
  const fleet = program
    .command('fleet')
    .description(
      'Many gateways, one policy and one event stream on NATS JetStream (docs/fleet.md).',
    );
  const rules = fleet
    .command('rules')
    .description("The fleet's packs (KV bucket celgate-packs): every gateway installs them.");

  withNats(
    rules
      .command('install')
      .description('Validate packs and publish them to every gateway (key = pack id).'),
  )
    .argument('<packs...>', 'pack files (YAML)')
    .option('--wait', 'wait until every live gateway has applied (or refused) the new revision')
    .option('--timeout <ms>', 'how long --wait waits', '10000')
    .action(
      action(async (files: string[], o: NatsFlags & { wait?: boolean; timeout: string }) => {
        const packs = files.map((file) => {
          let text: string;
          try {
            text = readFileSync(file, 'utf8');
          } catch (err) {
            throw new CelgateError('E_CONFIG', `cannot read ${file}: ${(err as Error).message}`);
          }
          if (Buffer.byteLength(text) > MAX_PACK_BYTES)
            throw new CelgateError(
              'E_RULE_INVALID',
              `${file}: pack is larger than ${MAX_PACK_BYTES} bytes`,
            );
          const v = parsePack(text, file);
          if (!v.ok)
            throw new CelgateError(
              'E_RULE_INVALID',
              `${file}: ${v.issues.length} problem${v.issues.length === 1 ? '' : 's'}; nothing was published\n${v.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
            );
          if (!PACK_KEY_PATTERN.test(v.value.pack.id))
            throw new CelgateError(
              'E_RULE_INVALID',
              `${file}: pack id "${v.value.pack.id}" cannot be a KV key (${PACK_KEY_PATTERN})`,
            );
          return { file, id: v.value.pack.id, rules: v.value.pack.rules.length, text };
        });
        await withConnection(o, async (nc, cfg) => {
          const kv = await openBucket(nc, cfg.packs_bucket, 10);
          let revision = 0;
          for (const p of packs) {
            revision = await step(`publish ${p.id}`, kv.put(p.id, p.text));
            print(
              `published ${p.id} (${p.rules} rule${p.rules === 1 ? '' : 's'}) from ${p.file}: revision ${revision}`,
            );
          }
          if (o.wait === true) {
            const st = await openBucket(nc, cfg.status_bucket, 1);
            const r = await waitForGateways(st, revision, Number(o.timeout));
            print(`revision ${revision}:`);
            for (const l of r.lines) print(l);
            if (!r.ok) process.exitCode = 1;
          }
        });
      }),
    );

  withNats(rules.command('delete').description('Remove packs from every gateway.'))
    .argument('<ids...>', 'pack ids')
    .option('--wait', 'wait until every live gateway has applied the change')
    .option('--timeout <ms>', 'how long --wait waits', '10000')
    .action(
      action(async (ids: string[], o: NatsFlags & { wait?: boolean; timeout: string }) => {
        await withConnection(o, async (nc, cfg) => {
          const kv = await openBucket(nc, cfg.packs_bucket, 10);
          for (const id of ids) {
            const e = await step(`read ${id}`, kv.get(id));
            if (e === null || e.operation !== 'PUT')
              throw new CelgateError('E_RULE_NOT_FOUND', `no fleet pack "${id}"`);
            await step(`delete ${id}`, kv.delete(id));
            print(`deleted ${id}`);
          }
          if (o.wait === true) {
            const revision = (await step('read the bucket revision', kv.status())).streamInfo.state
              .last_seq;
            const r = await waitForGateways(
              await openBucket(nc, cfg.status_bucket, 1),
              revision,
              Number(o.timeout),
            );
            print(`revision ${revision}:`);
            for (const l of r.lines) print(l);
            if (!r.ok) process.exitCode = 1;
          }
        });
      }),
    );

  withNats(
    rules.command('list').description('The packs in the bucket: id, revision, time, rule count.'),
  )
    .option('--json', 'print JSON')
    .action(
      action(async (o: NatsFlags & { json?: boolean }) => {
        await withConnection(o, async (nc, cfg) => {
          const kv = await openBucket(nc, cfg.packs_bucket, 10);
          const rows: {
            id: string;
            revision: number;
            created: string;
            version: string;
            rules: number;
            problems: number;
          }[] = [];
          for (const key of await keysOf(kv, 'packs')) {
            const e = await step(`read ${key}`, kv.get(key));
            if (e === null || e.operation !== 'PUT') continue;
            const v = readPackText(e.string(), key, e.revision, cfg.packs_bucket);
            rows.push({ id: key, revision: e.revision, created: e.created.toISOString(), ...v });
          }
          rows.sort((a, b) => a.id.localeCompare(b.id));
          if (o.json === true) return print(JSON.stringify(rows, null, 2));
          if (rows.length === 0) return print(`no packs in ${cfg.packs_bucket}`);
          for (const r of rows)
            print(
              `${r.id.padEnd(28)} rev ${String(r.revision).padEnd(6)} ${r.created}  v${r.version.padEnd(8)} ${r.rules} rules${r.problems > 0 ? `  (${r.problems} problems!)` : ''}`,
            );
        });
      }),
    );

  withNats(rules.command('get').description("Print a fleet pack's YAML."))
    .argument('<id>', 'pack id')
    .action(
      action(async (id: string, o: NatsFlags) => {
        await withConnection(o, async (nc, cfg) => {
          const e = await step(`read ${id}`, (await openBucket(nc, cfg.packs_bucket, 10)).get(id));
          if (e === null || e.operation !== 'PUT')
            throw new CelgateError('E_RULE_NOT_FOUND', `no fleet pack "${id}"`);
          process.stdout.write(e.string());
        });
      }),
    );

  withNats(
    fleet
      .command('status')
      .description(
        'Every gateway: policy revision and generation, last error, export backlog, age.',
      ),
  )
    .option('--json', 'print JSON')
    .action(
      action(async (o: NatsFlags & { json?: boolean }) => {
        await withConnection(o, async (nc, cfg) => {
          const list = await statuses(await openBucket(nc, cfg.status_bucket, 1));
          if (o.json === true) return print(JSON.stringify(list, null, 2));
          if (list.length === 0) return print(`no gateway has reported in ${cfg.status_bucket}`);
          const now = Date.now();
          for (const s of list) {
            const when = now - s.updated_ms;
            const liveness = !s.running ? 'stopped' : when > STALE_MS ? 'STALE' : 'live';
            const exp =
              s.export === null
                ? 'export off'
                : `${s.export.connected ? 'exporting' : 'export disconnected'}, backlog ${s.export.backlog}`;
            print(
              `${s.gateway_id.padEnd(20)} ${liveness.padEnd(7)} ${age(when).padStart(7)} ago  policy ${s.policy.state} rev ${s.policy.revision} gen ${s.generation}  ${exp}`,
            );
            if (s.policy.last_error !== null)
              print(
                `${''.padEnd(20)} last error (rev ${s.policy.last_error_revision ?? '?'}): ${s.policy.last_error}`,
              );
          }
        });
      }),
    );

  withNats(
    fleet
      .command('events')
      .description('Decisions, findings and protocol rows from the event stream (oldest first).'),
  )
    .option('--gateway <id>', 'only this gateway')
    .option('--session <id>', 'only this session')
    .option('--family <f>', 'only http, dns, mcp or process')
    .option('--kind <k>', 'only decision, finding, net, dns, mcp or exec rows', 'decision')
    .option('--decision <verdict>', 'only allow, block or error')
    .option('--since <when>', 'from a duration ago (15m, 2h) or an ISO time')
    .option('-n, --limit <n>', 'print at most the last N', '50')
    .option('--json', 'one JSON object per line')
    .action(
      action(
        async (
          o: NatsFlags & {
            gateway?: string;
            session?: string;
            family?: string;
            kind: string;
            decision?: string;
            since?: string;
            limit: string;
            json?: boolean;
          },
        ) => {
          const kinds = ['decision', 'finding', 'net', 'dns', 'mcp', 'exec', 'all'];
          if (!kinds.includes(o.kind))
            throw new CelgateError('E_CONFIG', `--kind must be one of ${kinds.join(', ')}`);
          if (o.decision !== undefined && !['allow', 'block', 'error'].includes(o.decision))
            throw new CelgateError('E_CONFIG', '--decision must be allow, block or error');
          const limit = Number(o.limit);
          if (!Number.isInteger(limit) || limit < 1)
            throw new CelgateError('E_CONFIG', '--limit must be a positive integer');
          const kept: StreamMessage[] = [];
          await fleetEventStream(o, async (messages) => {
            for await (const m of messages) {
              if (o.kind !== 'all' && m.data.kind !== o.kind) continue;
              if (o.decision !== undefined && m.data.decision !== o.decision) continue;
              kept.push(m);
              if (kept.length > limit) kept.shift();
            }
          });
          for (const m of kept) {
            if (o.json === true) {
              print(JSON.stringify({ stream_seq: m.seq, subject: m.subject, ...m.data }));
              continue;
            }
            const d = m.data;
            const ts = new Date(
              typeof d.timestamp_ms === 'number' ? d.timestamp_ms : m.time_ms,
            ).toISOString();
            print(
              `${ts}  ${String(d.gateway_id).padEnd(12)} ${String(d.kind).padEnd(8)} ${String(d.event_type ?? d.family ?? '').padEnd(13)} ${String(d.decision ?? d.severity ?? '').padEnd(5)} ${d.rule_id ?? '-'}  ${d.reason ?? d.title ?? ''}`,
            );
          }
        },
      ),
    );

  withNats(
    fleet
      .command('stats')
      .description(
        'Counts over the event stream: per gateway and decision, per family, top blocking rules, findings.',
      ),
  )
    .option('--gateway <id>', 'only this gateway')
    .option('--since <when>', 'from a duration ago (15m, 2h) or an ISO time')
    .option('--json', 'print JSON')
    .action(
      action(async (o: NatsFlags & { gateway?: string; since?: string; json?: boolean }) => {
        await fleetEventStream(o, async (messages) => {
          const s = await fleetStats(messages);
          if (o.json === true) {
            print(JSON.stringify(s, null, 2));
            return;
          }
          print(
            `${s.messages} messages${s.first_ms === null ? '' : ` from ${new Date(s.first_ms).toISOString()} to ${new Date(s.last_ms!).toISOString()}`}`,
          );
          for (const [gw, g] of Object.entries(s.by_gateway))
            print(
              `  ${gw.padEnd(20)} ${g.decisions} decisions (${g.allow} allow, ${g.block} block, ${g.error} error), ${g.findings} findings, ${g.rows} protocol rows`,
            );
          print(
            `  by family: ${
              Object.entries(s.by_family)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ') || '-'
            }`,
          );
          print(
            `  top blocking rules: ${s.top_block_rules.map((r) => `${r.rule_id} ${r.count}`).join(', ') || '-'}`,
          );
          print(
            `  findings: ${
              Object.entries(s.findings_by_severity)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ') || '-'
            }`,
          );
        });
      }),
    );
}

function readPackText(
  text: string,
  key: string,
  revision: number,
  bucket: string,
): { version: string; rules: number; problems: number } {
  // Same parser as a gateway; only for display, so a broken pack is listed with its problem count.
  const v = parsePack(text, `nats:${bucket}/${key}@${revision}`);
  return v.ok
    ? { version: v.value.pack.version, rules: v.value.pack.rules.length, problems: 0 }
    : { version: '?', rules: 0, problems: v.issues.length };
}
