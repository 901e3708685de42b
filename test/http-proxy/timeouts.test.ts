import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTunnel, rawExchange } from '../../support/proxy-clients.js';
import { startProxyRig, type ProxyRig } from '../../support/proxy-rig.js';

let rig: ProxyRig;
beforeAll(async () => {
  rig = await startProxyRig(undefined, {
    handshakeTimeoutMs: 300,
    headersTimeoutMs: 300,
    keepAliveTimeoutMs: 300,
  });
});
afterAll(async () => {
  await rig?.close();
});

/** Waits (bounded) until the newest net row carries `error`, and returns it. */
async function lastRowWith(sink: ProxyRig['sink'], error: string): Promise<unknown> {
  for (let i = 0; i < 100 && sink.nets.at(-1)?.error !== error; i++)
    await new Promise((r) => setTimeout(r, 20));
  return sink.nets.at(-1);
}

function closed(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => resolve(out));
  });
}

describe('explicit proxy: slow clients are cut off by the configured timeouts', () => {
  it('drops a tunnel that never sends its first byte, and records why', async () => {
    const { socket } = await openTunnel(rig.port, 'api.test:443');
    await closed(socket);
    expect(await lastRowWith(rig.sink, 'tls_handshake_timeout')).toMatchObject({
      error: 'tls_handshake_timeout',
      sni: 'api.test',
    });
  });

  it('drops a tunnel that sends half a ClientHello and stalls', async () => {
    const { socket } = await openTunnel(rig.port, 'api.test:443');
    const done = closed(socket);
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await done;
    expect(await lastRowWith(rig.sink, 'tls_handshake_timeout')).toMatchObject({
      error: 'tls_handshake_timeout',
    });
  });

  it('drops a slowloris client that never finishes its request head', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: rig.port });
    const done = closed(socket);
    socket.write('GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nX-Slow: a');
    const timer = setInterval(() => socket.writable && socket.write('a'), 100);
    const out = await done;
    clearInterval(timer);
    expect(out === '' || out.startsWith('HTTP/1.1 408')).toBe(true);
    expect(await lastRowWith(rig.sink, 'header_timeout')).toMatchObject({
      error: 'header_timeout',
    });
  }, 10_000); // the bound under test is 300 ms; Node's unconfigured check would take 30 s

  it('keeps serving after the slow clients', async () => {
    const out = await rawExchange(
      rig.port,
      'GET http://plain.test/ok HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe('explicit proxy: connection bound', () => {
  it('closes connections past http.max_connections, records them, and serves again once one closes', async () => {
    const small = await startProxyRig(undefined, { maxConnections: 2 });
    try {
      const a = net.connect({ host: '127.0.0.1', port: small.port });
      const b = net.connect({ host: '127.0.0.1', port: small.port });
      await Promise.all([a, b].map((s) => new Promise((r) => s.once('connect', r))));
      await new Promise((r) => setTimeout(r, 50));
      const c = net.connect({ host: '127.0.0.1', port: small.port });
      c.on('error', () => {});
      await new Promise<void>((r) => c.once('close', () => r()));
      expect(await lastRowWith(small.sink, 'too_many_connections')).toMatchObject({
        error: 'too_many_connections',
      });
      a.destroy();
      b.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const out = await rawExchange(
        small.port,
        'GET http://plain.test/again HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      await small.close();
    }
  });
});
