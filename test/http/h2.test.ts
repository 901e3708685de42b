/**
 * HTTP/2 from the guest, on the vsock port and inside explicit-proxy tunnels: ALPN chooses the codec; each stream is one event, one decision and one ledger row;
 * a blocked stream gets its own 403 while the other streams on the connection go on; bodies are
 * judged; a large response is delivered with flow control; and the hostile patterns (rapid reset,
 * a CONTINUATION flood, an oversized header list) are refused without hurting other connections.
 * Clients: Node's `http2` and `curl --http2`.
 */
import { execFile, spawnSync } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExplicitProxy, type ExplicitProxy } from '../../src/transport/http/proxy.js';
import { startHttpService, type HttpService } from '../../src/transport/http/service.js';
import { H2_MAX_CONCURRENT_STREAMS } from '../../src/transport/http/terminator.js';
import { parseUpstreamMap } from '../../src/transport/http/upstream.js';
import {
  makeCerts,
  MemorySink,
  reqOf,
  ScriptedDecider,
  startUpstream,
  type Certs,
  type Upstream,
} from '../../support/http-harness.js';
import { openTunnel } from '../../support/proxy-clients.js';

const run = promisify(execFile);
const HAVE_CURL_H2 = /HTTP2/.test(
  spawnSync('curl', ['--version'], { encoding: 'utf8' }).stdout ?? '',
);
const BIG = 8 * 1024 * 1024;

let certs: Certs;
let up: Upstream;
let svc: HttpService;
let proxy: ExplicitProxy;
let port: number;
let proxyPort: number;
const sink = new MemorySink();
/** Whether the upstream had to wait for the big response to drain (backpressure reached it). */
let upstreamWaited = false;

beforeAll(async () => {
  certs = await makeCerts();
  const big = Buffer.alloc(BIG, 0x61);
  up = await startUpstream(certs, (req, res, body) => {
    if (req.url === '/big') {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(BIG),
      });
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          const chunk = big.subarray(sent, sent + 64 * 1024);
          sent += chunk.length;
          if (!res.write(chunk)) {
            upstreamWaited = true;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        url: req.url,
        host: req.headers.host,
        method: req.method,
        body: body.toString(),
      }),
    );
  });
  // Scripted rules (no native modules), so this file runs on every Node the CI tries.
  const decider = new ScriptedDecider([
    {
      id: 'no-admin',
      action: 'block',
      reason: 'admin is off limits',
      when: (e) => reqOf(e)?.path.startsWith('/admin') === true,
    },
    {
      id: 'no-secret-upload',
      action: 'block',
      reason: 'no secrets in bodies',
      readsBody: true,
      when: (e) => reqOf(e)?.body.text.includes('secret') === true,
    },
  ]);
  const map = parseUpstreamMap({
    'api.test': `127.0.0.1:${up.port}`,
    'other.test': `127.0.0.1:${up.port}`,
  });
  if (!map.ok) throw new Error('map');
  const deps = { decider, sink, origin: { session_id: 'h2' }, certs: certs.leaves };
  svc = await startHttpService(
    { vsock: { mode: 'tcp', port: 0 }, upstreamMap: map.value, extraCa: [certs.caPem] },
    deps,
  );
  port = Number(svc.addresses.http!.split(':').pop());
  proxy = await startExplicitProxy(
    { listen: '127.0.0.1:0', upstreamMap: map.value, extraCa: [certs.caPem] },
    deps,
  );
  proxyPort = Number(proxy.addresses.proxy!.split(':').pop());
});

afterAll(async () => {
  await svc?.close();
  await proxy?.close();
  await up?.close();
  certs?.cleanup();
});

/** An HTTP/2 session to `host` on the vsock port, or through a CONNECT tunnel of the proxy. */
async function session(host: string, via: 'vsock' | 'proxy'): Promise<http2.ClientHttp2Session> {
  const socket =
    via === 'vsock'
      ? net.connect(port, '127.0.0.1')
      : (await openTunnel(proxyPort, `${host}:443`)).socket;
  const s = http2.connect(`https://${host}`, {
    createConnection: () =>
      tls.connect({ socket, servername: host, ca: certs.caPem, ALPNProtocols: ['h2'] }),
  });
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  return s;
}

function request(
  s: http2.ClientHttp2Session,
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = s.request(
      { ':path': path, ':method': init.method ?? 'GET', ...(init.headers ?? {}) },
      { endStream: init.body === undefined },
    );
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString(), headers }));
    req.on('error', reject);
    if (init.body !== undefined) req.end(init.body);
  });
}

describe.each(['vsock', 'proxy'] as const)('HTTP/2 via the %s', (via) => {
  it('ALPN picks h2; each stream is judged on its own: a blocked stream gets its 403, the others on the connection go on', async () => {
    const s = await session('api.test', via);
    const before = sink.nets.length;
    try {
      const [a, b, c] = await Promise.all([
        request(s, '/one'),
        request(s, '/admin/x'),
        request(s, '/three?q=1'),
      ]);
      expect((s.socket as tls.TLSSocket).alpnProtocol).toBe('h2');
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body)).toMatchObject({ url: '/one', host: 'api.test' });
      expect(b.status).toBe(403);
      expect(b.body).toContain('no-admin');
      expect(c.status).toBe(200);
      expect(JSON.parse(c.body)).toMatchObject({ url: '/three?q=1' });
      // The same session serves more after a refusal.
      expect((await request(s, '/four')).status).toBe(200);
    } finally {
      s.close();
    }
    const rows = (await sink.waitNets(before + 4)).slice(before);
    expect(rows.map((r) => [r.path, r.decision, r.status]).sort()).toEqual(
      [
        ['/admin/x', 'block', 403],
        ['/four', 'allow', 200],
        ['/one', 'allow', 200],
        ['/three', 'allow', 200],
      ].sort(),
    );
    expect(rows.every((r) => r.sni === 'api.test' && r.scheme === 'https')).toBe(true);
  });

  it('judges request bodies: a body rule blocks one POST, another is forwarded whole', async () => {
    const s = await session('api.test', via);
    try {
      const blocked = await request(s, '/upload', {
        method: 'POST',
        body: 'my secret',
        headers: { 'content-type': 'text/plain' },
      });
      expect(blocked.status).toBe(403);
      expect(blocked.body).toContain('no-secret-upload');
      const seen = up.seen.length;
      const ok = await request(s, '/upload', {
        method: 'POST',
        body: 'harmless',
        headers: { 'content-type': 'text/plain' },
      });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toMatchObject({ method: 'POST', body: 'harmless' });
      expect(up.seen.length).toBe(seen + 1);
    } finally {
      s.close();
    }
  });

  it('delivers an 8 MiB response with flow control while the client reads slowly', async () => {
    const s = await session('api.test', via);
    upstreamWaited = false;
    try {
      const got = await new Promise<number>((resolve, reject) => {
        const req = s.request({ ':path': '/big' });
        let n = 0;
        let paused = false;
        req.on('data', (c: Buffer) => {
          n += c.length;
          if (!paused && n > 1024 * 1024) {
            paused = true;
            req.pause();
            setTimeout(() => req.resume(), 300);
          }
        });
        req.on('end', () => resolve(n));
        req.on('error', reject);
      });
      expect(got).toBe(BIG);
      expect(upstreamWaited).toBe(true);
    } finally {
      s.close();
    }
  });
});

describe.skipIf(!HAVE_CURL_H2)('curl --http2', () => {
  it('on the vsock port: HTTP/2 200 for an allowed path, 403 for a blocked one', async () => {
    const args = (path: string) => [
      '-sS',
      '--http2',
      '--cacert',
      `${certs.dir}/ca.cert.pem`,
      '--connect-to',
      `api.test:443:127.0.0.1:${port}`,
      '-w',
      '\\n%{http_version} %{http_code}',
      `https://api.test${path}`,
    ];
    const ok = await run('curl', args('/c'));
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('2 200');
    const no = await run('curl', args('/admin'));
    expect(no.stdout.trim().split('\n').at(-1)).toBe('2 403');
  });

  it('through the explicit proxy', async () => {
    const r = await run('curl', [
      '-sS',
      '--http2',
      '--cacert',
      `${certs.dir}/ca.cert.pem`,
      '-x',
      `http://127.0.0.1:${proxyPort}`,
      '-w',
      '\\n%{http_version} %{http_code}',
      'https://api.test/p',
    ]);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('2 200');
  });
});

/** Writes raw HTTP/2 frames on a TLS connection negotiated as h2; resolves when the gateway closes it. */
async function rawH2(
  frames: (write: (b: Buffer) => boolean | null) => Promise<void> | void,
): Promise<{ closedByPeer: boolean; ms: number }> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'api.test',
    ca: certs.caPem,
    ALPNProtocols: ['h2'],
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  let closed = false;
  socket.on('data', () => {});
  socket.on('error', () => {});
  const gone = new Promise<void>((r) => socket.once('close', () => r()));
  socket.once('end', () => (closed = true));
  socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  socket.write(frame(4, 0, 0, Buffer.alloc(0)));
  const t0 = Date.now();
  await frames((b) => (socket.destroyed || closed ? null : socket.write(b)));
  await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
  const closedByPeer = closed || socket.destroyed;
  socket.destroy();
  return { closedByPeer, ms: Date.now() - t0 };
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

describe('hostile HTTP/2 patterns are refused without hurting other connections', () => {
  it('a CONTINUATION flood: the connection is closed, another connection is served', async () => {
    // HEADERS without END_HEADERS, then CONTINUATION frames of literal headers without end.
    const literal = Buffer.concat([
      Buffer.from([0x00, 0x03]),
      Buffer.from('x-a'),
      Buffer.from([0x7f, 0x00]),
      Buffer.alloc(127, 0x62),
    ]);
    let sent = 0;
    const r = await rawH2(async (write) => {
      write(
        frame(1, 0x00, 1, Buffer.from([0x82, 0x84, 0x87, 0x41, 0x08, ...Buffer.from('api.test')])),
      );
      for (let i = 0; i < 20_000; i++) {
        const ok = write(frame(9, 0x00, 1, literal));
        if (ok === null) return;
        sent++;
        if (!ok) await new Promise((res) => setTimeout(res, 1));
      }
    });
    expect(r.closedByPeer).toBe(true);
    // Closed long before the flood was written out.
    expect(sent).toBeLessThan(20_000);
    const s = await session('api.test', 'vsock');
    expect((await request(s, '/after-flood')).status).toBe(200);
    s.close();
  });

  it('rapid reset: streams opened and cancelled at once do not stop the gateway serving others', async () => {
    const bad = await session('api.test', 'vsock');
    for (let i = 0; i < 2000 && !bad.destroyed && !bad.closed; i++) {
      try {
        const req = bad.request({ ':path': `/reset-${i}` });
        req.on('error', () => {});
        req.close(http2.constants.NGHTTP2_CANCEL);
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    bad.destroy();
    const s = await session('api.test', 'vsock');
    expect((await request(s, '/after-reset')).status).toBe(200);
    s.close();
  });

  it(`an oversized header list is refused on its stream; at most ${H2_MAX_CONCURRENT_STREAMS} concurrent streams are advertised`, async () => {
    const s = await session('api.test', 'vsock');
    try {
      expect(s.remoteSettings.maxConcurrentStreams).toBe(H2_MAX_CONCURRENT_STREAMS);
      const huge = await new Promise<string>((resolve) => {
        const req = s.request({ ':path': '/huge', 'x-big': 'b'.repeat(200_000) });
        req.on('response', (h) => resolve(String(h[':status'])));
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        req.on('close', () => resolve(`closed ${req.rstCode}`));
      });
      expect(huge).not.toBe('200');
    } finally {
      s.destroy();
    }
    const again = await session('api.test', 'vsock');
    expect((await request(again, '/after-huge')).status).toBe(200);
    again.close();
  });
});
