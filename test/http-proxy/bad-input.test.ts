import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseHttpConfig } from '../../src/transport/http/config.js';
import {
  agentLabel,
  parseConnectTarget,
  parseProxyListen,
  startExplicitProxy,
} from '../../src/transport/http/proxy.js';
import { MemorySink, reqOf, ScriptedDecider } from '../../support/http-harness.js';
import { openTunnel, rawExchange, tlsThroughTunnel } from '../../support/proxy-clients.js';
import { startProxyRig, type ProxyRig } from '../../support/proxy-rig.js';

let rig: ProxyRig;
beforeAll(async () => {
  rig = await startProxyRig();
});
afterAll(async () => {
  await rig?.close();
});

/** The proxy still serves a normal request (after each hostile one). */
async function stillServes(): Promise<void> {
  const out = await rawExchange(
    rig.port,
    'GET http://plain.test/alive HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n',
  );
  expect(out).toMatch(/^HTTP\/1\.1 200/);
}

/** The error of the newest net row, once a row newer than `since` exists (bounded wait). */
async function lastError(since = rowsBefore): Promise<string | null> {
  for (let i = 0; i < 100 && rig.sink.nets.length <= since; i++)
    await new Promise((r) => setTimeout(r, 20));
  return rig.sink.nets.at(-1)?.error ?? null;
}

let rowsBefore = 0;
beforeEach(() => {
  rowsBefore = rig.sink.nets.length;
});

describe('explicit proxy: bad input is refused, recorded, and does not stop the proxy', () => {
  it.each([
    ['no port', 'CONNECT api.test HTTP/1.1\r\nHost: api.test\r\n\r\n'],
    ['port out of range', 'CONNECT api.test:70000 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a path instead of an authority', 'CONNECT /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('answers a CONNECT with %s with 400 and no tunnel', async (_name, bytes) => {
    const out = await rawExchange(rig.port, bytes);
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(await lastError()).toBe('connect_bad_target');
    await stillServes();
  });

  it('closes a tunnel whose first bytes are neither TLS nor HTTP', async () => {
    const { socket } = await openTunnel(rig.port, 'api.test:443');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => {});
    socket.write(Buffer.from([0x01, 0x02, 0x03, 0x04]));
    await closed;
    expect(await lastError()).toBe('unknown_protocol');
    await stillServes();
  });

  it('closes a tunnel whose ClientHello is truncated', async () => {
    const { socket } = await openTunnel(rig.port, 'api.test:443');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => {});
    // A TLS record header announcing 512 bytes of handshake, then only a few of them, then EOF.
    socket.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    await closed;
    expect(await lastError()).toBe('tls_truncated_client_hello');
    await stillServes();
  });

  it('closes a tunnel whose SNI is not a host name a certificate can be minted for', async () => {
    const error = await tlsThroughTunnel(
      rig.port,
      'api.test:443',
      rig.gatewayCerts.caPem,
      'bad!name.test',
    ).then(
      (s) => {
        s.destroy();
        return null;
      },
      (e: Error) => e,
    );
    expect(error).not.toBeNull();
    expect(await lastError()).toMatch(/^(cert_mint_failed|tls_parse_error)$/);
    await stillServes();
  });

  it('refuses an absolute https:// URL sent without CONNECT', async () => {
    const out = await rawExchange(
      rig.port,
      'GET https://api.test/ HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(out).toMatch(/CONNECT/);
    expect(rig.https.seen.every((s) => s.url !== '/')).toBe(true);
  });

  it('refuses a request with both Content-Length and Transfer-Encoding (smuggling)', async () => {
    const out = await rawExchange(
      rig.port,
      'POST http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    await stillServes();
  });

  it('refuses an oversized header block with 431', async () => {
    const out = await rawExchange(
      rig.port,
      `GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 431/);
    expect(await lastError()).toBe('header_too_large');
    await stillServes();
  });

  it('refuses a WebSocket upgrade to a blocked host inside a tunnel before anything goes upstream', async () => {
    rig.decider.set([
      { id: 'no-evil', action: 'block', when: (e) => reqOf(e)?.host === 'evil.test' },
    ]);
    const seen = rig.https.seen.length;
    try {
      const socket = await tlsThroughTunnel(
        rig.port,
        'evil.test:443',
        rig.gatewayCerts.caPem,
        'evil.test',
      );
      const answer = await new Promise<string>((resolve) => {
        let out = '';
        socket.on('data', (c: Buffer) => (out += c.toString()));
        socket.on('close', () => resolve(out));
        socket.on('error', () => resolve(out));
        socket.write(
          'GET /ws HTTP/1.1\r\nHost: evil.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
      });
      expect(answer).toMatch(/^HTTP\/1\.1 403/);
      expect(answer).toMatch(/no-evil/);
    } finally {
      rig.decider.set([]);
    }
    expect(rig.https.seen.length).toBe(seen);
  });

  it('fails closed with 502 when the engine throws, and forwards nothing', async () => {
    rig.decider.set([{ id: 'boom', action: 'throw', when: () => true }]);
    const seen = rig.plain.seen.length;
    try {
      const out = await rawExchange(
        rig.port,
        'GET http://plain.test/x HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 502/);
    } finally {
      rig.decider.set([]);
    }
    expect(rig.plain.seen.length).toBe(seen);
  });
});

describe('explicit proxy configuration', () => {
  it.each(['0.0.0.0:8080', '192.168.1.10:8080', 'example.com:8080'])(
    'refuses to listen on the non-loopback address %s',
    (addr) => {
      expect(() => parseProxyListen(addr)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    },
  );

  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
  ])('accepts the loopback address %s', (addr, expected) => {
    expect(parseProxyListen(addr)).toEqual(expected);
  });

  it.each([
    ['api.test:443', { host: 'api.test', port: 443 }],
    ['[::1]:8443', { host: '::1', port: 8443 }],
    ['api.test', null],
    ['api.test:0', null],
    ['a b:443', null],
    [`${'a'.repeat(400)}:443`, null],
  ])('parses the CONNECT target %j', (target, expected) => {
    expect(parseConnectTarget(target)).toEqual(expected);
  });

  it('reads http.proxy from the http config section: default, off, and a refused LAN address', () => {
    expect(parseHttpConfig({}).proxy).toBe('127.0.0.1:8080');
    expect(parseHttpConfig({ proxy: 'off' }).proxy).toBeNull();
    expect(parseHttpConfig({ proxy: null }).proxy).toBeNull();
    expect(parseHttpConfig({ proxy: '127.0.0.1:0' }).proxy).toBe('127.0.0.1:0');
    expect(() => parseHttpConfig({ proxy: '0.0.0.0:8080' }, 'cfg.yaml')).toThrow(
      /cfg.yaml: http.proxy: 0.0.0.0 is not a loopback address/,
    );
    expect(() => parseHttpConfig({ proxy: 8080 }, 'cfg.yaml')).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    );
  });

  it.each([
    [`Basic ${Buffer.from('agent-1:pw').toString('base64')}`, 'agent-1'],
    [`basic ${Buffer.from('a.b_c-9:').toString('base64')}`, 'a.b_c-9'],
    [`Basic ${Buffer.from('has space:x').toString('base64')}`, undefined],
    [`Basic ${Buffer.from(`${'a'.repeat(65)}:x`).toString('base64')}`, undefined],
    ['Bearer abc', undefined],
    ['Basic !!!', undefined],
    [undefined, undefined],
  ])('takes the agent label from Proxy-Authorization %j', (header, expected) => {
    expect(agentLabel(header)).toBe(expected);
  });

  it('reports a port that is already taken as E_CONFIG', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(
        startExplicitProxy(
          { listen: `127.0.0.1:${port}` },
          {
            decider: new ScriptedDecider(),
            sink: new MemorySink(),
            origin: { session_id: 's' },
            certs: rig.gatewayCerts.leaves,
          },
        ),
      ).rejects.toMatchObject({ code: 'E_CONFIG' });
    } finally {
      blocker.close();
    }
  });
});
