/**
 * The hostile review's bypasses, reproduced on every HTTP entry — the vsock port (plain and TLS,
 * with `http.direct` on and off) and the explicit proxy (plain absolute-form and CONNECT + TLS) —
 * against the real policy engine: an allowed Upgrade never becomes an unjudged relay, hosts and
 * paths are judged (and forwarded) in one canonical form, and a body rule fails closed on a body
 * that cannot be decoded.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import { startExplicitProxy, type ExplicitProxy } from '../../src/transport/http/proxy.js';
import { startHttpService, type HttpService } from '../../src/transport/http/service.js';
import { parseUpstreamMap } from '../../src/transport/http/upstream.js';
import {
  makeCerts,
  MemorySink,
  startUpstream,
  type Certs,
  type Upstream,
} from '../../support/http-harness.js';
import { tlsThroughTunnel } from '../../support/proxy-clients.js';

const RULES = [
  {
    id: 'no-blocked-host',
    condition: 'http.request.host == "blocked.test" || http.request.host.endsWith(".blocked.test")',
    reason: 'blocked host',
  },
  {
    id: 'no-admin',
    condition: 'http.request.path.startsWith("/admin")',
    reason: 'admin is off limits',
  },
  {
    id: 'no-101-here',
    condition: 'http.response.status == 101 && http.request.path == "/ws-deny-101"',
    reason: 'no switching here',
  },
  {
    id: 'no-secret-upload',
    condition: 'http.request.body.text.contains("secret")',
    reason: 'no secrets in bodies',
  },
  {
    id: 'no-secret-lenient',
    condition: 'http.request.path == "/lenient" && http.request.body.text.contains("secret")',
    reason: 'lenient',
    undecodable_body: 'evaluate',
  },
];

let certs: Certs;
let tlsUp: Upstream;
let plainUp: Upstream;
/** Bytes an upstream received on a connection after answering a refused upgrade (must stay empty). */
const smuggled: string[] = [];
const sink = new MemorySink();
const services: (HttpService | ExplicitProxy)[] = [];

function engine(): PolicyEngine {
  const registry = new RuleRegistry();
  for (const r of RULES) {
    const out = registry.installRaw({ action: 'block', priority: 0, ...r }, 'bypass-test');
    if (!out.ok) throw new Error(JSON.stringify(out.issues));
  }
  return new PolicyEngine(registry);
}

/** Upgrade handling of both upstreams: /ws (101 websocket, echoes), /ws-200 (refuses, keeps the socket open), /ws-echo (101 to another protocol). */
const upgraded = new Set<net.Socket>();
function upgrades(server: http.Server): void {
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    upgraded.add(socket);
    const url = req.url ?? '';
    if (url === '/ws' || url === '/ws-deny-101') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
      const echo = (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d]));
      if (head.length > 0) echo(head);
      socket.on('data', echo);
    } else if (url === '/ws-echo') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n',
      );
    } else {
      // A naive upstream: answers, keeps the connection and would read whatever comes next.
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nnot upgraded');
      if (head.length > 0) smuggled.push(head.toString('latin1'));
      socket.on('data', (d: Buffer) => smuggled.push(d.toString('latin1')));
    }
    socket.on('error', () => {});
  });
}

interface Entry {
  name: string;
  tls: boolean;
  /** A connection on which HTTP/1.1 for `host` can be written. */
  open(host: string): Promise<Duplex>;
  /** The request target for `path` on `host`. */
  target(host: string, path: string): string;
}

/** The entries, by name, built in beforeAll; the tables below are static so vitest can list them. */
const built = new Map<string, Entry>();
const NAMES = {
  plain: [
    'vsock port, plain, direct path',
    'vsock port, plain, Node path',
    'explicit proxy, plain absolute-form',
  ],
  tls: [
    'vsock port, TLS, direct path',
    'vsock port, TLS, Node path',
    'explicit proxy, CONNECT + TLS',
  ],
};
const ALL = [...NAMES.plain, ...NAMES.tls];
const entryOf = (name: string): Entry => {
  const e = built.get(name);
  if (e === undefined) throw new Error(`entry ${name} was not built`);
  return e;
};
const entries = { push: (e: Entry) => built.set(e.name, e) };

beforeAll(async () => {
  certs = await makeCerts();
  const echo = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        url: req.url,
        host: req.headers.host,
        upgrade: req.headers.upgrade ?? null,
        settings: req.headers['http2-settings'] ?? null,
        body: body.toString(),
      }),
    );
  };
  tlsUp = await startUpstream(certs, echo);
  plainUp = await startUpstream(null, echo);
  upgrades(tlsUp.server as http.Server);
  upgrades(plainUp.server as http.Server);
  // Every name goes to the upstream of its scheme, the blocked ones too: a bypass would reach it.
  const hosts = ['api.test', 'blocked.test', 'x.blocked.test'];
  const mapFor = (port: number) => {
    const m = parseUpstreamMap(Object.fromEntries(hosts.map((h) => [h, `127.0.0.1:${port}`])));
    if (!m.ok) throw new Error('map');
    return m.value;
  };
  const deps = { decider: engine(), sink, origin: { session_id: 'bypass' }, certs: certs.leaves };
  for (const direct of [true, false]) {
    for (const tls of [false, true]) {
      const svc = await startHttpService(
        {
          vsock: { mode: 'tcp', port: 0 },
          upstreamMap: mapFor(tls ? tlsUp.port : plainUp.port),
          extraCa: [certs.caPem],
          direct,
        },
        deps,
      );
      services.push(svc);
      const port = Number(svc.addresses.http!.split(':').pop());
      entries.push({
        name: `vsock port, ${tls ? 'TLS' : 'plain'}, ${direct ? 'direct path' : 'Node path'}`,
        tls,
        open: (host) =>
          tls
            ? new Promise((resolve, reject) => {
                void import('node:tls').then(({ default: t }) => {
                  const s = t.connect({
                    host: '127.0.0.1',
                    port,
                    ca: certs.caPem,
                    servername: host,
                    ALPNProtocols: ['http/1.1'],
                  });
                  s.once('secureConnect', () => resolve(s));
                  s.once('error', reject);
                });
              })
            : new Promise((resolve, reject) => {
                const s = net.connect(port, '127.0.0.1', () => resolve(s));
                s.once('error', reject);
              }),
        target: (_host, path) => path,
      });
    }
  }
  for (const tls of [false, true]) {
    const proxy = await startExplicitProxy(
      {
        listen: '127.0.0.1:0',
        upstreamMap: mapFor(tls ? tlsUp.port : plainUp.port),
        extraCa: [certs.caPem],
      },
      deps,
    );
    services.push(proxy);
    const port = Number(proxy.addresses.proxy!.split(':').pop());
    entries.push({
      name: `explicit proxy, ${tls ? 'CONNECT + TLS' : 'plain absolute-form'}`,
      tls,
      open: (host) =>
        tls
          ? tlsThroughTunnel(port, `${host}:443`, certs.caPem, host)
          : new Promise((resolve, reject) => {
              const s = net.connect(port, '127.0.0.1', () => resolve(s));
              s.once('error', reject);
            }),
      target: (host, path) => (tls ? path : `http://${host}${path}`),
    });
  }
});

afterAll(async () => {
  for (const s of upgraded) s.destroy();
  for (const s of services) await s.close();
  await tlsUp?.close();
  await plainUp?.close();
  certs?.cleanup();
});

/** Writes `chunks` (with `gapMs` between them) and collects everything until the connection closes. */
async function exchange(
  entry: Entry,
  host: string,
  chunks: string[],
  gapMs = 0,
  waitMs = 3000,
): Promise<string> {
  const s = await entry.open(host);
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString('latin1')));
  s.on('error', () => {});
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  for (const c of chunks) {
    if (!s.writable) break;
    s.write(c, 'latin1');
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, waitMs))]);
  s.destroy();
  return out;
}

const head = (entry: Entry, host: string, path: string, extra = '') =>
  `GET ${entry.target(host, path)} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
const UPGRADE =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const status = (out: string) => out.slice(0, out.indexOf('\r\n'));
/** The JSON body of a raw response (length-delimited or chunked). */
function jsonBody(out: string): any {
  const at = out.indexOf('\r\n\r\n');
  const headBlock = out.slice(0, at).toLowerCase();
  let body = out.slice(at + 4);
  if (headBlock.includes('transfer-encoding: chunked')) {
    let text = '';
    for (let rest = body; ;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, nl), 16);
      if (!(size > 0)) break;
      text += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 2 + size + 2);
    }
    body = text;
  }
  return JSON.parse(body);
}
const seenBy = (e: Entry) => (e.tls ? tlsUp : plainUp).seen;

describe.each(ALL)('%s', (name) => {
  const entry = new Proxy({} as Entry, { get: (_t, k) => entryOf(name)[k as keyof Entry] });
  it('an allowed upgrade the upstream does not accept is answered and closed: nothing after it reaches the upstream', async () => {
    smuggled.length = 0;
    const later = `GET /admin/later HTTP/1.1\r\nHost: blocked.test\r\n\r\n`;
    // The repro: the upgrade, then (pipelined at once, and again a moment later) a request rules refuse.
    const out = await exchange(
      entry,
      'api.test',
      [head(entry, 'api.test', '/ws-200', UPGRADE) + later, later],
      300,
    );
    expect(status(out)).toBe('HTTP/1.1 200 OK');
    expect(out).toContain('not upgraded');
    expect(out.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(smuggled).toEqual([]);
    expect(seenBy(entry).some((r) => r.url.includes('/admin'))).toBe(false);
  });

  it('relays raw bytes only after a real 101 to WebSocket; bytes sent early arrive after it', async () => {
    const out = await exchange(
      entry,
      'api.test',
      [`${head(entry, 'api.test', '/ws', UPGRADE)}ping`],
      0,
      600,
    );
    expect(status(out)).toBe('HTTP/1.1 101 Switching Protocols');
    expect(out).toMatch(/\r\n\r\necho:ping$/);
  });

  it('judges the 101 as an http.response: a rule refusing it turns it into a 403 and nothing is relayed', async () => {
    const out = await exchange(entry, 'api.test', [
      `${head(entry, 'api.test', '/ws-deny-101', UPGRADE)}ping`,
    ]);
    expect(status(out)).toBe('HTTP/1.1 403 Forbidden');
    expect(out).toContain('no-101-here');
    expect(out).not.toContain('echo:');
  });

  it('refuses a 101 to a protocol other than the WebSocket that was asked for', async () => {
    const out = await exchange(entry, 'api.test', [head(entry, 'api.test', '/ws-echo', UPGRADE)]);
    expect(status(out)).toBe('HTTP/1.1 502 Bad Gateway');
    expect(out).toContain('not WebSocket');
  });

  it('never tunnels Upgrade: h2c — the request is served as HTTP/1.1 without its upgrade headers', async () => {
    const out = await exchange(entry, 'api.test', [
      head(
        entry,
        'api.test',
        '/h2c',
        'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n',
      ),
    ]);
    expect(status(out)).toBe('HTTP/1.1 200 OK');
    const body = jsonBody(out);
    expect(body).toMatchObject({ url: '/h2c', upgrade: null, settings: null });
  });

  it('refuses an h2c upgrade that carries a body', async () => {
    const out = await exchange(entry, 'api.test', [
      head(
        entry,
        'api.test',
        '/h2c',
        'Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n',
      ) + 'hello',
    ]);
    expect(status(out)).toBe('HTTP/1.1 400 Bad Request');
  });

  it.each([
    ['/x/../admin'],
    ['/./admin'],
    ['//admin'],
    ['/%61dmin'],
    ['/x/%2e%2e/admin'],
    ['/x/%2E%2E/%2e/admin/'],
    ['/api/..//admin'],
  ])('judges %s in its normalised form (a path rule on /admin blocks it)', async (path) => {
    const out = await exchange(entry, 'api.test', [
      head(entry, 'api.test', path, 'Connection: close\r\n'),
    ]);
    expect(status(out)).toBe('HTTP/1.1 403 Forbidden');
    expect(out).toContain('no-admin');
  });

  it('forwards exactly the normalised path it judged, keeps an encoded slash encoded, and records the raw target', async () => {
    const raw = '/api/./v1//items/../%7euser/a%2fb?q=%2e%2E';
    const out = await exchange(entry, 'api.test', [
      head(entry, 'api.test', raw, 'Connection: close\r\n'),
    ]);
    expect(status(out)).toBe('HTTP/1.1 200 OK');
    expect(jsonBody(out).url).toBe('/api/v1/~user/a%2Fb?q=%2e%2E');
    const ev = sink.decisions
      .map((d) => d.event)
      .reverse()
      .find(
        (e) =>
          e.common.event_type === 'http.request' &&
          (e as any).http.request.path === '/api/v1/~user/a%2Fb',
      );
    expect((ev as any)?.http.request.raw_target).toBe(entry.target('api.test', raw));
  });

  it.each([['/x\\admin'], ['/%zz'], ['/a%2']])(
    'refuses the path %s, which cannot be normalised safely, with 400',
    async (path) => {
      const out = await exchange(entry, 'api.test', [
        head(entry, 'api.test', path, 'Connection: close\r\n'),
      ]);
      expect(status(out)).toBe('HTTP/1.1 400 Bad Request');
    },
  );

  it('refuses a body a body rule cannot read (unknown or broken Content-Encoding) with a 403 naming why', async () => {
    for (const [encoding, body] of [
      ['x-custom', Buffer.from('token=secret')],
      ['gzip', Buffer.from('not gzip at all: secret')],
      ['gzip', Buffer.concat([gzipSync('token=secret'), Buffer.from('trailing')])],
    ] as const) {
      const req = `POST ${entry.target('api.test', '/upload')} HTTP/1.1\r\nHost: api.test\r\nContent-Encoding: ${encoding}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      const out = await exchange(entry, 'api.test', [req + body.toString('latin1')]);
      expect(status(out), `${encoding}: ${out}`).toBe('HTTP/1.1 403 Forbidden');
      expect(out).toContain(`could not be decoded (Content-Encoding: ${encoding})`);
      expect(out).toContain('no-secret-upload');
    }
    expect(tlsUp.seen.concat(plainUp.seen).some((r) => r.url === '/upload')).toBe(false);
  });

  it('lets a rule that opts out (undecodable_body: evaluate) judge the empty text instead', async () => {
    const body = 'token=secret';
    const req = `POST ${entry.target('api.test', '/lenient')} HTTP/1.1\r\nHost: api.test\r\nContent-Encoding: x-custom\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    // no-secret-upload (which refuses) sorts first: it still fails closed; the opt-out is per rule.
    const out = await exchange(entry, 'api.test', [req]);
    expect(out).toContain('no-secret-upload');
  });
});

describe.each(NAMES.plain)('%s: the Host header', (name) => {
  const entry = new Proxy({} as Entry, { get: (_t, k) => entryOf(name)[k as keyof Entry] });
  it.each([['blocked.test.'], ['BLOCKED.test'], ['x.Blocked.Test.']])(
    'judges %s as the canonical host (the host rule blocks it)',
    async (host) => {
      const out = await exchange(entry, host, [head(entry, host, '/x', 'Connection: close\r\n')]);
      expect(status(out)).toBe('HTTP/1.1 403 Forbidden');
      expect(out).toContain('no-blocked-host');
    },
  );

  it.each([['blocked.test..'], ['.blocked.test'], ['a..blocked.test']])(
    'refuses the host %s (an empty label) with 400',
    async (host) => {
      const out = await exchange(entry, host, [head(entry, host, '/x', 'Connection: close\r\n')]);
      expect(status(out)).toBe('HTTP/1.1 400 Bad Request');
    },
  );
});

describe.each(NAMES.tls)('%s: the TLS server name', (name) => {
  const entry = new Proxy({} as Entry, { get: (_t, k) => entryOf(name)[k as keyof Entry] });
  it('judges and records an upper-case SNI in lower case', async () => {
    const out = await exchange(entry, 'Blocked.Test', [
      head(entry, 'Blocked.Test', '/x', 'Connection: close\r\n'),
    ]);
    expect(status(out)).toBe('HTTP/1.1 403 Forbidden');
    expect(sink.nets.at(-1)?.host).toBe('blocked.test');
  });
});
