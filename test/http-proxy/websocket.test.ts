import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUpstreamMap } from '../../src/transport/http/upstream.js';
import { startExplicitProxy, type ExplicitProxy } from '../../src/transport/http/proxy.js';
import {
  makeCerts,
  MemorySink,
  reqOf,
  ScriptedDecider,
  type Certs,
} from '../../support/http-harness.js';

let certs: Certs;
let upstream: http.Server;
let proxy: ExplicitProxy;
let port: number;
const decider = new ScriptedDecider();
const sink = new MemorySink();
let upgrades = 0;

beforeAll(async () => {
  certs = await makeCerts();
  // A minimal upgrade-capable upstream: answers 101 and echoes bytes back upper-cased.
  upstream = http.createServer((_req, res) => res.end('no upgrade'));
  upstream.on('upgrade', (_req, socket: net.Socket) => {
    upgrades += 1;
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    );
    socket.on('data', (c: Buffer) => socket.write(c.toString().toUpperCase()));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = (upstream.address() as net.AddressInfo).port;
  const map = parseUpstreamMap({
    'ws.test': `127.0.0.1:${up}`,
    'wsblocked.test': `127.0.0.1:${up}`,
  });
  if (!map.ok) throw new Error('map');
  proxy = await startExplicitProxy(
    { listen: '127.0.0.1:0', upstreamMap: map.value },
    { decider, sink, origin: { session_id: 'ws' }, certs: certs.leaves },
  );
  port = Number(proxy.addresses.proxy!.split(':').pop());
});
afterAll(async () => {
  await proxy?.close();
  upstream?.closeAllConnections();
  upstream?.close();
  certs?.cleanup();
});

function upgradeVia(host: string): Promise<{ head: string; echo: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let sent = false;
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      if (!sent && buf.includes('\r\n\r\n') && buf.startsWith('HTTP/1.1 101')) {
        sent = true;
        s.write('hello');
      }
      if (buf.endsWith('HELLO')) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => {
      const end = buf.indexOf('\r\n\r\n');
      resolve({ head: end < 0 ? buf : buf.slice(0, end), echo: end < 0 ? '' : buf.slice(end + 4) });
    });
    s.write(
      `GET http://${host}/chat HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    );
  });
}

describe('explicit proxy: upgrades through a plain proxy request', () => {
  it('relays an allowed upgrade byte for byte after the decision', async () => {
    const r = await upgradeVia('ws.test');
    expect(r.head).toMatch(/^HTTP\/1\.1 101/);
    expect(r.echo).toBe('HELLO');
    expect(sink.decisions.at(-1)?.event.common.event_type).toBe('http.request');
  });

  it('refuses a blocked upgrade with 403 before contacting upstream', async () => {
    decider.set([
      { id: 'no-ws', action: 'block', when: (e) => reqOf(e)?.host === 'wsblocked.test' },
    ]);
    const before = upgrades;
    const r = await upgradeVia('wsblocked.test');
    expect(r.head).toMatch(/^HTTP\/1\.1 403/);
    expect(upgrades).toBe(before);
    decider.set([]);
  });
});
