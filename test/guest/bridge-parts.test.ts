import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameReader, frame } from '../../src/transport/dns/framing.js';
import {
  servfailFor,
  startDnsStub,
  type DnsStubHandle,
} from '../../src/transport/guest/dns-stub.js';
import { startForwarder, type ForwarderHandle } from '../../src/transport/guest/forwarder.js';
import { parseProcNetTcp } from '../../src/transport/guest/process-id.js';
import { startMcpRelay, type McpRelayHandle } from '../../src/transport/guest/mcp-relay.js';
import { encodeData, FrameDecoder, FrameKind, type Frame } from '../../src/transport/mcp/frame.js';
import {
  encodeMetaPreamble,
  listenVsock,
  type GuestMeta,
  type VsockListener,
} from '../../src/transport/vsock.js';

/** Reads from a socket until `done(text)` is true. */
function readUntil(s: net.Socket, done: (t: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString();
      if (done(text)) resolve(text);
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
  });
}

describe('guest bridge parts against stand-in host ports (uds vsock)', () => {
  let dir: string;
  let udsBase: string;
  const hosts: VsockListener[] = [];
  let fwd: ForwarderHandle;
  let stub: DnsStubHandle;
  let relay: McpRelayHandle;
  const dnsMeta: GuestMeta[] = [];
  const mcpFrames: Frame[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-bridge-'));
    udsBase = join(dir, 'vsock');
    hosts.push(
      // 5002: echo back whatever arrives, upper-cased, so the relay is visible both ways.
      await listenVsock({ mode: 'uds', udsBase, port: 5002 }, ({ socket, head }) => {
        const up = (b: Buffer) => socket.write(b.toString().toUpperCase());
        if (head.length > 0) up(head);
        socket.on('data', up);
        socket.resume();
      }),
      // 5007: NXDOMAIN for every question.
      await listenVsock({ mode: 'uds', udsBase, port: 5007 }, ({ socket, head, meta }) => {
        dnsMeta.push(meta);
        const reader = new FrameReader();
        const onBytes = (b: Buffer) => {
          for (const msg of reader.push(b).frames) {
            const q = dnsPacket.decode(msg);
            socket.write(
              frame(
                dnsPacket.encode({ id: q.id, type: 'response', flags: 3, questions: q.questions }),
              ),
            );
          }
        };
        if (head.length > 0) onBytes(head);
        socket.on('data', onBytes);
        socket.resume();
      }),
      // 5003: record frames; answer each DATA with a JSON-RPC error on the same stream.
      await listenVsock({ mode: 'uds', udsBase, port: 5003 }, ({ socket, head }) => {
        const dec = new FrameDecoder();
        const onBytes = (b: Buffer) => {
          for (const f of dec.push(b).frames) {
            mcpFrames.push(f);
            if (f.kind === FrameKind.DATA) {
              const id = JSON.parse(f.payload.toString()).id;
              socket.write(
                encodeData(
                  f.streamId,
                  JSON.stringify({
                    jsonrpc: '2.0',
                    id,
                    error: { code: -32001, message: 'blocked' },
                  }),
                ),
              );
            }
          }
        };
        if (head.length > 0) onBytes(head);
        socket.on('data', onBytes);
        socket.resume();
      }),
    );
    fwd = await startForwarder({
      host: '127.0.0.1',
      port: 0,
      upstream: { mode: 'uds', udsBase, port: 5002 },
    });
    stub = await startDnsStub({
      host: '127.0.0.1',
      port: 0,
      upstream: { mode: 'uds', udsBase, port: 5007 },
    });
    relay = await startMcpRelay({
      socketPath: join(dir, 'mcp.sock'),
      upstream: { mode: 'uds', udsBase, port: 5003 },
      defaultProcessName: 'anon',
    });
  });

  afterAll(async () => {
    await Promise.all([fwd.close(), stub.close(), relay.close(), ...hosts.map((h) => h.close())]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('relays forwarder bytes to the host HTTP port and back', async () => {
    const s = net.connect(fwd.port, '127.0.0.1');
    s.write('hello host');
    expect(await readUntil(s, (t) => t.length >= 10)).toBe('HELLO HOST');
    s.destroy();
  });

  it('answers UDP queries through the pooled host connection, with a META preamble on it', async () => {
    const c = dgram.createSocket('udp4');
    const ask = (id: number, name: string) =>
      new Promise<dnsPacket.Packet & { rcode?: string }>((resolve) => {
        c.once('message', (m) => resolve(dnsPacket.decode(m)));
        c.send(
          dnsPacket.encode({
            id,
            type: 'query',
            flags: dnsPacket.RECURSION_DESIRED,
            questions: [{ name, type: 'A' }],
          }),
          stub.port,
          '127.0.0.1',
        );
      });
    for (let i = 1; i <= 3; i++) {
      const a = await ask(i, `n${i}.example.test`);
      expect(a.id).toBe(i);
      expect(a.rcode).toBe('NXDOMAIN');
    }
    c.close();
    expect(dnsMeta.length).toBe(1); // three queries, one reused host connection
  });

  it('relays DNS over TCP unchanged', async () => {
    const s = net.connect(stub.port, '127.0.0.1');
    s.write(
      frame(
        dnsPacket.encode({
          id: 77,
          type: 'query',
          questions: [{ name: 'tcp.example.test', type: 'A' }],
        }),
      ),
    );
    const reply = await new Promise<Buffer>((resolve) => {
      const r = new FrameReader();
      s.on('data', (b: Buffer) => {
        const f = r.push(b).frames[0];
        if (f !== undefined) resolve(f);
      });
    });
    expect(dnsPacket.decode(reply)).toMatchObject({ id: 77, rcode: 'NXDOMAIN' });
    s.destroy();
  });

  it('drops UDP datagrams too short to be DNS instead of relaying them', async () => {
    const before = dnsMeta.length;
    const c = dgram.createSocket('udp4');
    await new Promise<void>((r) => c.send(Buffer.from('x'), stub.port, '127.0.0.1', () => r()));
    c.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(dnsMeta.length).toBe(before);
  });

  it('turns MCP lines into OPEN + DATA frames naming the process, and frames back into lines', async () => {
    const s = net.connect(join(dir, 'mcp.sock'));
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write(encodeMetaPreamble({ process_name: 'claude-agent' }));
    s.write(
      `${JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'x__y' } })}\n`,
    );
    const line = await readUntil(s, (t) => t.includes('\n'));
    expect(JSON.parse(line)).toMatchObject({ id: 5, error: { code: -32001 } });
    expect(mcpFrames[0]).toMatchObject({ kind: FrameKind.OPEN, processName: 'claude-agent' });
    expect(mcpFrames[1]).toMatchObject({ kind: FrameKind.DATA });
    s.destroy();
  });

  it('uses the default process name when the MCP client sends no preamble', async () => {
    const before = mcpFrames.length;
    const s = net.connect(join(dir, 'mcp.sock'));
    s.write(`${JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'ping' })}\n`);
    await readUntil(s, (t) => t.includes('\n'));
    const opens = mcpFrames.slice(before).filter((f) => f.kind === FrameKind.OPEN);
    expect(opens).toEqual([{ kind: FrameKind.OPEN, streamId: 1, processName: 'anon' }]);
    s.destroy();
  });

  it('closes local clients when the host port is unreachable (fail closed)', async () => {
    const dead = await startForwarder({
      host: '127.0.0.1',
      port: 0,
      upstream: { mode: 'uds', udsBase: join(dir, 'nothing'), port: 5002 },
    });
    const s = net.connect(dead.port, '127.0.0.1');
    s.write('anything');
    // Closed (or reset) without a single byte back.
    expect(await readUntil(s, () => false).catch((e: NodeJS.ErrnoException) => e.code)).toMatch(
      /^(|ECONNRESET)$/,
    );
    await dead.close();
  });
});

describe('DNS stub SERVFAIL synthesis (host unreachable)', () => {
  const query = dnsPacket.encode({
    id: 4242,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: 'a.example.test', type: 'AAAA' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never],
  });

  it('answers with the same id and question, RCODE SERVFAIL and no records', () => {
    const r = dnsPacket.decode(servfailFor(query)!) as dnsPacket.Packet & { rcode?: string };
    expect(r).toMatchObject({
      id: 4242,
      type: 'response',
      rcode: 'SERVFAIL',
      questions: [{ name: 'a.example.test', type: 'AAAA' }],
    });
    expect(r.additionals).toEqual([]);
  });

  it.each([
    ['too short', Buffer.alloc(5)],
    ['a response, not a query', servfailFor(query)!],
    [
      'a name that runs off the end',
      Buffer.concat([query.subarray(0, 12), Buffer.from([9, 97, 98])]),
    ],
    [
      'a compression pointer in the question',
      Buffer.concat([query.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]),
    ],
  ])('returns null for %s', (_n, bytes) => {
    expect(servfailFor(bytes)).toBeNull();
  });

  it('sends SERVFAIL at once when the host DNS port is unreachable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-stub-dead-'));
    const dead = await startDnsStub({
      host: '127.0.0.1',
      port: 0,
      upstream: { mode: 'uds', udsBase: join(dir, 'none'), port: 5007 },
    });
    const c = dgram.createSocket('udp4');
    const reply = await new Promise<Buffer>((resolve) => {
      c.once('message', (m) => resolve(m));
      c.send(query, dead.port, '127.0.0.1');
    });
    expect((dnsPacket.decode(reply) as { rcode?: string }).rcode).toBe('SERVFAIL');
    c.close();
    await dead.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('forwarded-connection process lookup', () => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0',
    '   1: 0100CB0A:B3F2 0A7100CB:01BB 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0',
    '   2: 0100007F:3A99 0100CB0A:B3F2 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0',
  ].join('\n');
  it('finds the client socket by its local port and skips listeners', () => {
    expect(parseProcNetTcp(table, 0xb3f2)).toBe(2222);
    expect(parseProcNetTcp(table, 0x3a99)).toBe(3333);
  });
  it('returns null when the port is absent or ambiguous', () => {
    expect(parseProcNetTcp(table, 1)).toBeNull();
    expect(
      parseProcNetTcp(
        `${table}\n   3: 0100007F:B3F2 0100007F:0050 01 0:0 0:0 0 0 0 4444 1 0`,
        0xb3f2,
      ),
    ).toBeNull();
  });
});
