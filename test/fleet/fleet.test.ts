/**
 * The fleet against real nats-server processes and real gateways: packs installed with the CLI are
 * enforced by every gateway of a three-node cluster, a bad revision is refused everywhere while the
 * running rules stay, the event stream holds exactly the ledger's rows across a 10 s NATS outage
 * under load, and a gateway that starts with NATS unreachable enforces its local (and cached fleet)
 * packs and catches up when NATS comes.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, DeliverPolicy } from '@nats-io/jetstream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MAIN_JS, startGateway, type RunningTestGateway } from '../support/gateway.js';
import {
  HAVE_NATS,
  freePort,
  startNats,
  startNatsCluster,
  type NatsServer,
} from '../../bench/nats-server.js';

const run = promisify(execFile);
/** Stops what a test started when it ends (servers and gateways of one test never outlive it). */
const cleanup = {
  push: (fn: () => Promise<unknown>) =>
    onTestFinished(async () => void (await fn().catch(() => {}))),
};

const BLOCK_PACK = (host: string) => `id: fleet-dns
version: "1"
default_action: allow
rules:
  - id: fleet-block-${host.replace(/\./g, '-')}
    condition: dns.request.qname.endsWith("${host}")
    action: block
    reason: the fleet blocks ${host}
`;

function packFile(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'fleet-pack-')), 'pack.yaml');
  writeFileSync(f, text);
  return f;
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN_JS, ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** One DNS query over UDP to the gateway's dns.listen; resolves to the rcode. */
function query(port: number, name: string, socket?: dgram.Socket): Promise<string> {
  const s = socket ?? dgram.createSocket('udp4');
  const id = Math.floor(Math.random() * 65535);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off('message', on);
      reject(new Error(`no DNS answer for ${name}`));
    }, 5_000);
    const on = (msg: Buffer) => {
      const p = dnsPacket.decode(msg) as unknown as { id: number; rcode?: string };
      if (p.id !== id) return;
      clearTimeout(timer);
      s.off('message', on);
      if (socket === undefined) s.close();
      resolve(p.rcode ?? 'NOERROR');
    };
    s.on('message', on);
    s.send(
      dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name }],
      }),
      port,
      '127.0.0.1',
    );
  });
}

async function gateway(
  nats: string[],
  id: string,
  extra: Record<string, unknown> = {},
  dataDir?: string,
): Promise<RunningTestGateway> {
  const gw = await startGateway({
    ...(dataDir === undefined ? {} : { dataDir }),
    config: {
      dns: {
        listen: '127.0.0.1:0',
        upstreams: [],
        static: { 'ok.test': ['192.0.2.1'], 'x.evil.test': ['192.0.2.2'] },
      },
      fleet: { nats, gateway_id: id, ...extra },
    },
  });
  cleanup.push(() => gw.stop());
  return gw;
}

const dnsPort = (gw: RunningTestGateway) => Number(gw.listeners.dns_udp!.split(':')[1]);

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const health = async (gw: RunningTestGateway) => (await gw.api('GET', '/v1/health')).json;

/** Every message the stream holds for a subject filter: [msg id, parsed data]. */
async function streamMessages(url: string, filter: string): Promise<{ id: string; data: any }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('CELGATE_EVENTS', { subjects_filter: filter });
    const total = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    const out: { id: string; data: any }[] = [];
    if (total === 0) return out;
    const c = await jetstream(nc).consumers.get('CELGATE_EVENTS', {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.All,
    });
    while (out.length < total) {
      const batch = await c.fetch({ max_messages: 1000, expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        out.push({ id: m.headers?.get('Nats-Msg-Id') ?? '', data: m.json() });
      }
      if (got === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe.skipIf(!HAVE_NATS)('fleet on NATS JetStream (needs nats-server)', () => {
  it(
    'installs a pack on every gateway of a three-node cluster, refuses a bad revision everywhere and keeps the running rules',
    { timeout: 120_000 },
    async () => {
      const cluster = await startNatsCluster();
      cleanup.push(() => Promise.all(cluster.map((s) => s.stop())));
      const gws = await Promise.all(
        cluster.map((s, i) => gateway([s.url], `gw-${i}`, { replicas: 3 })),
      );
      const urls = cluster.map((s) => s.url).join(',');
      // Every gateway has connected, opened the replicated buckets and reported.
      await until(
        'three live gateways in fleet status',
        async () => {
          const r = await cli('fleet', 'status', '--nats', urls, '--json');
          return r.code === 0 && JSON.parse(r.stdout).filter((s: any) => s.running).length === 3;
        },
        60_000,
      );
      for (const gw of gws) expect(await query(dnsPort(gw), 'x.evil.test')).toBe('NOERROR');

      const install = await cli(
        'fleet',
        'rules',
        'install',
        packFile(BLOCK_PACK('evil.test')),
        '--nats',
        urls,
        '--wait',
      );
      expect(install.stderr).toBe('');
      expect(install.code).toBe(0);
      expect(install.stdout).toMatch(/published fleet-dns \(1 rule\)/);
      for (const i of [0, 1, 2]) expect(install.stdout).toContain(`gw-${i}: applied`);
      for (const gw of gws) {
        expect(await query(dnsPort(gw), 'x.evil.test')).toBe('NXDOMAIN');
        expect(await query(dnsPort(gw), 'ok.test')).toBe('NOERROR');
        expect((await health(gw)).fleet).toMatchObject({
          connected: true,
          policy: { state: 'applied', packs: { 'fleet-dns': expect.any(Number) } },
        });
      }

      // The CLI refuses a bad pack before publishing it.
      const bad = packFile(
        BLOCK_PACK('evil.test').replace('dns.request.qname', 'dns.request.qnme'),
      );
      const refused = await cli('fleet', 'rules', 'install', bad, '--nats', urls);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /pack\.yaml:6:\d+: rules\[0\]\.condition: unknown field "dns\.request\.qnme"; did you mean "dns\.request\.qname"\?.*\n?.*nothing was published|nothing was published[\s\S]*unknown field/,
      );

      // Written to the bucket behind the CLI's back, every gateway refuses it and keeps enforcing.
      const nc = await connect({ servers: cluster[1]!.url });
      const { Kvm } = await import('@nats-io/kv');
      const kv = await new Kvm(nc).open('celgate-packs');
      const badRev = await kv.put(
        'fleet-dns',
        BLOCK_PACK('evil.test').replace('dns.request.qname', 'dns.request.qnme'),
      );
      await nc.close();
      const status = await until('every gateway to refuse the bad revision', async () => {
        const r = await cli('fleet', 'status', '--nats', urls, '--json');
        const list = JSON.parse(r.stdout) as any[];
        return list.every((s) => s.policy.last_error_revision === badRev) ? list : undefined;
      });
      for (const s of status) {
        expect(s.policy.state).toBe('refused');
        expect(s.policy.last_error).toContain('unknown field "dns.request.qnme"');
        expect(s.policy.revision).toBeLessThan(badRev);
      }
      for (const gw of gws) expect(await query(dnsPort(gw), 'x.evil.test')).toBe('NXDOMAIN');
      const text = await cli('fleet', 'status', '--nats', urls);
      expect(text.stdout).toMatch(
        /gw-0 +live .* policy refused .*\n +last error \(rev \d+\): nats:celgate-packs\/fleet-dns@\d+:6:\d+ rules\[0\]\.condition: unknown field/,
      );

      // Deleting the pack lifts the block everywhere.
      const del = await cli('fleet', 'rules', 'delete', 'fleet-dns', '--nats', urls, '--wait');
      expect(del.code, del.stderr + del.stdout).toBe(0);
      for (const gw of gws) expect(await query(dnsPort(gw), 'x.evil.test')).toBe('NOERROR');
      expect((await cli('fleet', 'rules', 'list', '--nats', urls)).stdout).toContain(
        'no packs in celgate-packs',
      );
    },
  );

  it(
    'holds exactly the ledger rows (decisions, findings, dns rows) in the stream after a 10 s NATS outage under load, none lost or duplicated, and the CLI and ir hunt --fleet read them',
    { timeout: 120_000 },
    async () => {
      const nats = await startNats();
      cleanup.push(() => nats.stop());
      const gw = await gateway([nats.url], 'gw-outage');
      await until(
        'the exporter to connect',
        async () => (await health(gw)).fleet.export?.connected === true,
      );
      const port = dnsPort(gw);
      const sock = dgram.createSocket('udp4');
      let sent = 0;
      let answered = 0;
      let stop = false;
      const load = (async () => {
        while (!stop) {
          const names = ['ok.test', 'x.evil.test', 'metadata.google.internal'];
          await Promise.all(
            names.map((n) =>
              query(port, n, sock).then(
                () => answered++,
                () => {},
              ),
            ),
          );
          sent += names.length;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      await new Promise((r) => setTimeout(r, 2_000));
      await nats.stop();
      await until(
        'the gateway to see NATS gone',
        async () => (await health(gw)).fleet.export?.connected === false,
      );
      await new Promise((r) => setTimeout(r, 10_000));
      expect((await health(gw)).fleet.export.backlog).toBeGreaterThan(0);
      await nats.start();
      await new Promise((r) => setTimeout(r, 2_000));
      stop = true;
      await load;
      sock.close();
      expect(answered).toBeGreaterThan(300);
      // Stopping the gateway flushes the ledger; the exporter has caught up before it stops.
      await until(
        'the backlog to drain',
        async () => {
          const h = (await health(gw)).fleet.export;
          return h.connected && h.backlog === 0 && h.last_error === null;
        },
        30_000,
      );
      await gw.stop();

      const db = new Database(gw.sessionDb, { readonly: true });
      const decisions = db.prepare('SELECT event_id FROM event_rows').all() as {
        event_id: string;
      }[];
      const dnsRows = db.prepare('SELECT event_id FROM dns_events').all() as { event_id: string }[];
      const findings = db.prepare('SELECT event_id, rule_id FROM detection_findings').all() as {
        event_id: string;
        rule_id: string;
      }[];
      db.close();
      const msgs = await streamMessages(nats.url, `celgate.events.gw-outage.${gw.sessionId}.>`);
      const ids = msgs.map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(
        msgs
          .filter((m) => m.data.kind === 'decision')
          .map((m) => m.data.event_id)
          .sort(),
      ).toEqual(decisions.map((r) => r.event_id).sort());
      expect(
        msgs
          .filter((m) => m.data.kind === 'dns')
          .map((m) => m.data.event_id)
          .sort(),
      ).toEqual(dnsRows.map((r) => r.event_id).sort());
      expect(findings.length).toBeGreaterThan(0);
      expect(
        msgs
          .filter((m) => m.data.kind === 'finding')
          .map((m) => `${m.data.event_id}/${m.data.rule_id}`)
          .sort(),
      ).toEqual(findings.map((r) => `${r.event_id}/${r.rule_id}`).sort());
      expect(msgs.length).toBe(decisions.length + dnsRows.length + findings.length);

      // The CLI reads the same stream.
      const stats = JSON.parse(
        (await cli('fleet', 'stats', '--nats', nats.url, '--gateway', 'gw-outage', '--json'))
          .stdout,
      );
      const verdicts = msgs
        .filter((m) => m.data.kind === 'decision')
        .map((m) => m.data.decision as string);
      expect(stats.by_gateway['gw-outage']).toMatchObject({
        decisions: decisions.length,
        block: verdicts.filter((v) => v === 'block').length,
        rows: dnsRows.length,
        findings: findings.length,
      });
      const events = await cli(
        'fleet',
        'events',
        '--nats',
        nats.url,
        '--gateway',
        'gw-outage',
        '--decision',
        'block',
        '-n',
        '3',
      );
      expect(events.stdout.trim().split('\n')).toHaveLength(3);
      expect(events.stdout).toMatch(/gw-outage +decision dns\.request +block /);

      // `ir hunt --fleet` runs a detection pack over the decisions in the stream.
      const irPack = packFile(`schema: celgate.detection-ir/v1
id: fleet-hunt
version: 1.0.0
status: active
owner: test
rules:
  - id: evil-lookup
    title: lookup of evil.test
    event_type: dns.request
    severity: medium
    confidence: 0.8
    match:
      field: dns.request.qname
      endswith: [evil.test]
`);
      const hunt = await cli(
        'ir',
        'hunt',
        irPack,
        '--fleet',
        '--nats',
        nats.url,
        '--gateway',
        'gw-outage',
        '--json',
        '--no-progress',
      );
      expect(hunt.code, hunt.stderr).toBe(0);
      const report = JSON.parse(hunt.stdout);
      expect(report.source).toBe('fleet');
      expect(report.events_scanned).toBe(decisions.length);
      const evil = msgs.filter(
        // dns.request decisions only: an allowed lookup also records its dns.response event.
        (m) =>
          m.data.kind === 'decision' &&
          m.data.event.common.event_type === 'dns.request' &&
          m.data.event.dns.request.qname === 'x.evil.test',
      ).length;
      expect(evil).toBeGreaterThan(0);
      expect(report.total_matches).toBe(evil);
    },
  );

  it(
    'starts with NATS unreachable, enforces local and cached fleet packs, says so, and catches up when NATS comes',
    { timeout: 120_000 },
    async () => {
      const nats = await startNats();
      cleanup.push(() => nats.stop());
      const dataDir = mkdtempSync(join(tmpdir(), 'celgate-fleet-gw-'));
      const first = await gateway([nats.url], 'gw-late', {}, dataDir);
      const install = await cli(
        'fleet',
        'rules',
        'install',
        packFile(BLOCK_PACK('evil.test')),
        '--nats',
        nats.url,
        '--wait',
      );
      expect(install.code, `${install.stderr}\n${install.stdout}`).toBe(0);
      await first.stop();
      await nats.stop();

      const gw = await gateway([nats.url], 'gw-late', {}, dataDir);
      const h = await health(gw);
      expect(h.status).toBe('ok');
      expect(h.fleet).toMatchObject({
        connected: false,
        policy: { state: 'cached', packs: { 'fleet-dns': expect.any(Number) } },
      });
      // Local (balanced) and the cached fleet pack are enforced without NATS.
      expect(await query(dnsPort(gw), 'x.evil.test')).toBe('NXDOMAIN');
      expect(await query(dnsPort(gw), 'ok.test')).toBe('NOERROR');
      expect(await query(dnsPort(gw), 'metadata.google.internal')).toBe('NXDOMAIN');

      await nats.start();
      await until(
        'the gateway to connect and report',
        async () => {
          const f = (await health(gw)).fleet;
          return (
            f.connected &&
            f.policy.state === 'applied' &&
            f.export.connected &&
            f.export.backlog === 0
          );
        },
        30_000,
      );
      const msgs = await streamMessages(nats.url, `celgate.events.gw-late.${gw.sessionId}.>`);
      // Three lookups decided, and the answer of the one allowed (ok.test) as a dns.response.
      const decided = msgs.filter((m) => m.data.kind === 'decision');
      expect(decided.map((m) => m.data.event.common.event_type).sort()).toEqual([
        'dns.request',
        'dns.request',
        'dns.request',
        'dns.response',
      ]);
    },
  );

  it('explains what is wrong when the CLI cannot reach NATS', async () => {
    const port = await freePort();
    const r = await cli('fleet', 'status', '--nats', `nats://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot connect to NATS at nats://127.0.0.1:${port}`);
    const none = await cli('fleet', 'status');
    expect(none.stderr).toContain('which NATS? give --nats');
  });
});

export type { NatsServer };
