/**
 * DNS through the real gateway (`node dist/src/cli/main.js start`): the config section, a rule
 * installed through the control API applying to the next query, the vsock port, and the ledger rows
 * (`dns_events` + `security_events`) and log lines that name the rule.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectVsock } from '../../src/transport/vsock.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';

const run = promisify(execFile);
const haveDig = await run('dig', ['-v']).then(
  () => true,
  () => false,
);

let upstream: Authority;
let gw: RunningTestGateway;
let exitCode: number | null = null;

const hostPort = (a: string) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
};
const query = (id: number, name: string, type: dnsPacket.RecordType = 'A') =>
  dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);

beforeAll(async () => {
  upstream = await startAuthority({
    'allowed.test': [{ type: 'A', data: '192.0.2.10' }],
    'evil.test': [{ type: 'A', data: '192.0.2.66' }],
  });
  gw = await startGateway({
    config: {
      dns: {
        upstreams: [upstream.address],
        timeout_ms: 500,
        static: { 'db.internal': ['10.9.8.7'] },
      },
    },
    args: ['--dns-listen', '127.0.0.1:0'],
  });
});

afterAll(async () => {
  if (gw !== undefined && exitCode === null) await gw.stop();
  await upstream?.close();
});

describe('DNS in celgate start', () => {
  it('reports the DNS listeners (vsock by default, UDP + TCP from --dns-listen) in /v1/health', async () => {
    const health = await gw.api('GET', '/v1/health');
    expect(health.json.reason).toBeUndefined();
    expect(health.status).toBe(200);
    expect(health.json.listeners).toMatchObject({
      dns_vsock: expect.any(String),
      dns_udp: expect.any(String),
      dns_tcp: expect.any(String),
    });
  });

  it.skipIf(!haveDig)(
    'answers from the upstream, then NXDOMAINs a name blocked by a rule installed through the control API',
    async () => {
      const { host, port } = hostPort(gw.listeners.dns_udp!);
      const dig = async (name: string, ...flags: string[]) =>
        (
          await run('dig', [
            `@${host}`,
            '-p',
            String(port),
            name,
            'A',
            '+tries=1',
            '+time=3',
            ...flags,
          ])
        ).stdout;
      expect(await dig('evil.test')).toMatch(/IN\s+A\s+192\.0\.2\.66/);
      const put = await gw.api('PUT', '/v1/rules/dns-deny-evil', {
        description: 'no evil',
        condition: 'dns.request.qname == "evil.test"',
        action: 'block',
        reason: 'evil.test is off limits',
        priority: 0,
      });
      expect(put.status).toBe(201);
      expect(await dig('evil.test')).toContain('status: NXDOMAIN');
      expect(await dig('evil.test', '+tcp')).toContain('status: NXDOMAIN');
      expect(await dig('allowed.test')).toMatch(/IN\s+A\s+192\.0\.2\.10/);
    },
  );

  it('answers three framed queries in one write on the vsock port, in order', async () => {
    const { host, port } = hostPort(gw.listeners.dns_vsock!);
    const socket = await connectVsock({ mode: 'tcp', host, port }, { process_name: 'wget' });
    const frames: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (frames.length === 3) resolve();
      });
      setTimeout(() => reject(new Error(`${frames.length} answers`)), 5000);
    });
    socket.write(
      Buffer.concat([
        framed(query(1, 'allowed.test')),
        framed(query(2, 'evil.test')),
        framed(query(3, 'db.internal')),
      ]),
    );
    await done;
    socket.destroy();
    expect(frames.map((f) => f.readUInt16BE(0))).toEqual([1, 2, 3]);
    expect(frames.map((f) => f[3]! & 0xf)).toEqual([0, 3, 0]);
  });

  it('refuses hostile messages with FORMERR or silence, logs and counts the reason, and keeps serving', async () => {
    const { host, port } = hostPort(gw.listeners.dns_udp!);
    const dir = new URL('../fixtures/dns/', import.meta.url);
    const send = (msg: Buffer) =>
      new Promise<Buffer | null>((resolve) => {
        const s = dgram.createSocket('udp4');
        const t = setTimeout(() => {
          s.close();
          resolve(null);
        }, 300);
        s.on('message', (m) => {
          clearTimeout(t);
          s.close();
          resolve(m);
        });
        s.send(msg, port, host);
      });
    const selfPointer = readFileSync(new URL('self-pointer.bin', dir));
    const answer = await send(selfPointer);
    expect(answer !== null && answer[3]! & 0xf).toBe(1);
    expect(await send(readFileSync(new URL('truncated-header.bin', dir)))).toBeNull();
    const ok = await send(query(5, 'db.internal'));
    expect(ok !== null && ok[3]! & 0xf).toBe(0);
    const stats = await gw.api('GET', '/v1/dns/stats');
    expect(stats.status).toBe(200);
    expect(stats.json.malformed).toMatchObject({ pointer_loop: 1, truncated_header: 1 });
    // Log lines are flushed in batches (src/cli/logger.ts, at most LOG_FLUSH_MS later).
    await expect
      .poll(() => gw.logs().some((l) => l.dns_problem === 'pointer_loop' && l.level === 'warn'))
      .toBe(true);
  });

  it('records dns_events and security_events rows and log lines naming the rule', async () => {
    exitCode = await gw.stop();
    expect(exitCode).toBe(0);
    const db = new Database(gw.sessionDb, { readonly: true });
    try {
      const blocked = db
        .prepare("SELECT * FROM dns_events WHERE qname = 'evil.test' AND rcode = 'NXDOMAIN'")
        .all() as any[];
      expect(blocked.length).toBeGreaterThanOrEqual(2);
      expect(blocked.every((r) => r.rule_id === 'dns-deny-evil' && r.decision === 'block')).toBe(
        true,
      );
      expect(blocked.some((r) => r.transport === 'vsock' && r.process_name === 'wget')).toBe(true);
      const events = db
        .prepare(
          "SELECT * FROM security_events WHERE event_type = 'dns.request' AND rule_id = 'dns-deny-evil'",
        )
        .all();
      expect(events.length).toBe(blocked.length);
      const allowed = db
        .prepare("SELECT * FROM dns_events WHERE qname = 'allowed.test'")
        .all() as any[];
      expect(allowed.some((r) => JSON.parse(r.answers_json).includes('A 192.0.2.10'))).toBe(true);
    } finally {
      db.close();
    }
    const named = gw.logs().filter((l) => JSON.stringify(l).includes('dns-deny-evil'));
    expect(named.length).toBeGreaterThanOrEqual(1);
  });
});
