import net from 'node:net';
import tls from 'node:tls';
import { gzipSync, brotliCompressSync, deflateSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  parseClientHello,
  sniffProtocol,
  MAX_CLIENT_HELLO_BYTES,
} from '../../src/transport/http/clienthello.js';
import { bodyFacts, readBodyPrefix } from '../../src/transport/http/body.js';
import { renderDenial, decisionDenial } from '../../src/transport/http/denial.js';
import {
  forwardHeaders,
  hostHeaderFor,
  parseHostHeader,
  resolveTarget,
  type ExchangeContext,
} from '../../src/transport/http/target.js';
import { parseUpstreamMap, resolveUpstream } from '../../src/transport/http/upstream.js';
import { parseHttpConfig } from '../../src/transport/http/config.js';
import { resolveLimits } from '../../src/transport/http/limits.js';
import { LLHTTP } from '../../src/transport/http/llhttp.js';

async function clientHello(servername?: string, ALPNProtocols?: string[]): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  const c = tls.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    ...(servername ? { servername } : {}),
    ...(ALPNProtocols ? { ALPNProtocols } : {}),
  });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

it("llhttp (Node's private _http_common) passes its self-test on this Node", () => {
  expect(LLHTTP).toEqual({ ok: true });
});

describe('sniffProtocol', () => {
  it.each([
    [0x16, 'tls'],
    [0x47, 'http'],
    [0x50, 'http'],
    [0x67, 'unknown'],
    [0x00, 'unknown'],
    [0x80, 'unknown'],
  ] as const)('classifies first byte 0x%s as %s', (b, p) => expect(sniffProtocol(b)).toBe(p));
});

describe('parseClientHello', () => {
  it('extracts the SNI from a real ClientHello, byte by byte', async () => {
    const hello = await clientHello('API.Example.test');
    for (let i = 1; i < hello.length; i += 97)
      expect(parseClientHello(hello.subarray(0, i))).toEqual({ status: 'need_more' });
    expect(parseClientHello(hello)).toEqual({ status: 'ok', sni: 'api.example.test', alpn: [] });
  });

  it('reads the ALPN protocols the client offers, in its order', async () => {
    expect(parseClientHello(await clientHello('h2.test', ['h2', 'http/1.1']))).toEqual({
      status: 'ok',
      sni: 'h2.test',
      alpn: ['h2', 'http/1.1'],
    });
  });

  it('reports a ClientHello without SNI', async () => {
    expect(parseClientHello(await clientHello())).toEqual({ status: 'ok', sni: null, alpn: [] });
  });

  it('reassembles a ClientHello split across two records', async () => {
    const hello = await clientHello('split.test');
    const body = hello.subarray(5);
    const rec = (b: Buffer) =>
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
    const split = Buffer.concat([rec(body.subarray(0, 30)), rec(body.subarray(30))]);
    expect(parseClientHello(split)).toEqual({ status: 'ok', sni: 'split.test', alpn: [] });
  });

  it.each([
    ['an alert record', Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28]), 'E_PARSE'],
    [
      'a ServerHello',
      Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]),
      'E_PARSE',
    ],
    ['a zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), 'E_PARSE'],
    ['an SSLv2-style version', Buffer.from([0x16, 0x02, 0x00, 0x00, 0x04, 1, 0, 0, 0]), 'E_PARSE'],
    [
      'a huge declared ClientHello',
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x7f, 0xff, 0xff]),
      'E_LIMIT',
    ],
  ])('rejects %s with a typed error', (_n, buf, code) => {
    expect(() => parseClientHello(buf)).toThrowError(expect.objectContaining({ code }));
  });

  it('rejects an SNI that is not a host name', async () => {
    const hello = await clientHello('abc.test');
    const i = hello.indexOf('abc.test');
    const bad = Buffer.from(hello);
    bad.write('a b/test', i, 'latin1');
    expect(() => parseClientHello(bad)).toThrowError(expect.objectContaining({ code: 'E_PARSE' }));
  });

  it('bounds the ClientHello size', () =>
    expect(MAX_CLIENT_HELLO_BYTES).toBeLessThanOrEqual(64 * 1024));
});

const httpsCtx: ExchangeContext = { scheme: 'https', sniHost: 'api.test', port: 443, meta: {} };
const limits = { maxRequestTarget: 100, maxHeaderCount: 10 };

describe('resolveTarget', () => {
  it('takes the host from SNI and splits path and query', () => {
    expect(resolveTarget('GET', '/a/b?x=1&y', { host: 'api.test' }, 1, httpsCtx, limits)).toEqual({
      ok: true,
      target: {
        scheme: 'https',
        host: 'api.test',
        port: 443,
        path: '/a/b',
        query: 'x=1&y',
        hostHeaderMismatch: '',
        rawTarget: '/a/b?x=1&y',
      },
    });
  });
  it('keeps SNI authoritative and reports a lying Host header', () => {
    const r = resolveTarget('GET', '/', { host: 'other.test:8443' }, 1, httpsCtx, limits);
    expect(r).toMatchObject({
      ok: true,
      target: { host: 'api.test', port: 443, hostHeaderMismatch: 'other.test:8443' },
    });
  });
  it('uses the Host port when the Host header names the SNI host', () => {
    expect(resolveTarget('GET', '/', { host: 'api.test:8443' }, 1, httpsCtx, limits)).toMatchObject(
      { ok: true, target: { port: 8443 } },
    );
  });
  it('reads plain HTTP host from Host, and absolute-form targets', () => {
    const ctx: ExchangeContext = { scheme: 'http', sniHost: '', port: 80, meta: {} };
    expect(resolveTarget('GET', '/p', { host: 'plain.test:8080' }, 1, ctx, limits)).toMatchObject({
      ok: true,
      target: { scheme: 'http', host: 'plain.test', port: 8080 },
    });
    expect(
      resolveTarget('GET', 'http://abs.test/q?z', { host: 'abs.test' }, 1, ctx, limits),
    ).toMatchObject({ ok: true, target: { host: 'abs.test', path: '/q', query: 'z' } });
    expect(resolveTarget('GET', '/p', {}, 1, ctx, limits)).toMatchObject({
      ok: false,
      status: 400,
    });
  });
  it.each([
    ['too many headers', 'GET', '/', { host: 'api.test' }, 11, 431],
    ['a long target', 'GET', `/${'a'.repeat(200)}`, { host: 'api.test' }, 1, 414],
    ['a relative target', 'GET', 'x', { host: 'api.test' }, 1, 400],
    ['two Host headers', 'GET', '/', { host: 'a.test, b.test' }, 2, 400],
    ['a malformed Host', 'GET', '/', { host: 'a b' }, 1, 400],
  ])('refuses %s', (_n, method, url, headers, count, status) => {
    expect(resolveTarget(method, url, headers, count, httpsCtx, limits)).toMatchObject({
      ok: false,
      status,
    });
  });
  it('parses bracketed IPv6 hosts', () =>
    expect(parseHostHeader('[::1]:8080')).toEqual({ host: '::1', port: 8080 }));
});

describe('forwardHeaders', () => {
  it('drops hop-by-hop headers and those named in Connection, keeping repeats', () => {
    const raw = [
      'Host',
      'x',
      'Connection',
      'keep-alive, X-Secret-Hop',
      'X-Secret-Hop',
      '1',
      'Transfer-Encoding',
      'chunked',
      'Accept',
      'a',
      'Accept',
      'b',
      'Expect',
      '100-continue',
    ];
    expect(forwardHeaders(raw)).toEqual(['Accept', 'a', 'Accept', 'b']);
  });
  it('keeps upgrade headers when asked', () => {
    expect(
      forwardHeaders(
        ['Upgrade', 'websocket', 'Connection', 'Upgrade'],
        new Set(['upgrade', 'connection']),
      ),
    ).toEqual(['Upgrade', 'websocket', 'Connection', 'Upgrade']);
  });
  it('adds the port to Host only when it is not the default', () => {
    expect(hostHeaderFor({ scheme: 'https', host: 'a.test', port: 443 })).toBe('a.test');
    expect(hostHeaderFor({ scheme: 'http', host: 'a.test', port: 8080 })).toBe('a.test:8080');
  });
});

describe('denials', () => {
  it('renders JSON for JSON clients and text otherwise, naming rule and reason', () => {
    const j = renderDenial({
      kind: 'blocked',
      status: 403,
      rule_id: 'r1',
      reason: 'nope',
      event_id: 'e1',
      accept: 'application/json',
    });
    expect(j.status).toBe(403);
    expect(JSON.parse(j.body.toString())).toMatchObject({
      blocked: true,
      rule_id: 'r1',
      reason: 'nope',
      event_id: 'e1',
    });
    const t = renderDenial({
      kind: 'blocked',
      status: 403,
      rule_id: 'r1',
      reason: 'nope',
      event_id: 'e1',
      accept: 'text/html',
    });
    expect(t.body.toString()).toMatch(/rule r1.*nope[\s\S]*Retrying will not help/);
    expect(t.headers['content-length']).toBe(String(t.body.length));
  });
  it('maps engine errors to 502', () => {
    const d = decisionDenial(
      {
        action: 'error',
        rule_id: null,
        reason: 'boom',
        mode: 'fail_closed',
        matches: [],
        findings: [],
        errors: [],
        generation: 1,
        eval_ns: 0,
      },
      'e',
      '',
    );
    expect(d.status).toBe(502);
  });
});

describe('body facts', () => {
  const facts = async (raw: Buffer, enc = '', limit = 1024, chunk = 7) => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < raw.length; i += chunk) chunks.push(raw.subarray(i, i + chunk));
    const prefix = await readBodyPrefix(Readable.from(chunks, { objectMode: false }), limit);
    return bodyFacts({
      prefix,
      contentEncoding: enc,
      contentType: 'text/plain',
      declaredLength: raw.length,
      limit,
    });
  };
  it('buffers a small body whole', async () => {
    expect(await facts(Buffer.from('hello secret'))).toMatchObject({
      state: 'buffered',
      text: 'hello secret',
      size: 12,
      truncated: false,
    });
  });
  it('stops at the limit and says the body was truncated', async () => {
    const f = await facts(Buffer.alloc(5000, 0x61), '', 100);
    expect(f.state).toBe('truncated');
    expect(f.truncated).toBe(true);
    expect(f.text.length).toBeLessThanOrEqual(100);
    expect(f.size).toBe(5000);
  });
  it.each([
    ['gzip', gzipSync('zipped secret')],
    ['deflate', deflateSync('zipped secret')],
    ['br', brotliCompressSync('zipped secret')],
  ])('decodes %s for rules', async (enc, raw) => {
    expect(await facts(raw, enc)).toMatchObject({ state: 'buffered', text: 'zipped secret' });
  });
  it('never inflates a decompression bomb past the limit', async () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    const f = await facts(bomb, 'gzip', 1024, 65536);
    expect(f.state).toBe('truncated');
    expect(f.text.length).toBeLessThanOrEqual(1024);
  });
  it('marks garbage claiming gzip as undecodable', async () => {
    expect(await facts(Buffer.from('not gzip at all'), 'gzip')).toMatchObject({
      state: 'undecodable',
      text: '',
    });
  });
});

describe('upstream map and config', () => {
  it('parses host and host:port keys and prefers the exact port', () => {
    const m = parseUpstreamMap(['api.test=127.0.0.1:9000', 'api.test:8443=127.0.0.1:9443']);
    expect(m.ok).toBe(true);
    if (!m.ok) return;
    expect(resolveUpstream(m.value, 'api.test', 443)).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(resolveUpstream(m.value, 'api.test', 8443)).toEqual({ host: '127.0.0.1', port: 9443 });
    expect(resolveUpstream(m.value, 'other.test', 443)).toEqual({ host: 'other.test', port: 443 });
  });
  it('reports bad entries as issues', () => {
    const m = parseUpstreamMap(['api.test=nowhere', 'bad host=1.2.3.4:5']);
    expect(m.ok).toBe(false);
    if (!m.ok) expect(m.issues).toHaveLength(2);
  });
  it('parses the http config section with defaults and refuses unknown keys', () => {
    const c = parseHttpConfig(
      {
        max_body_buffer: 2048,
        upstream_map: { 'a.test': '127.0.0.1:1' },
        timeouts: { headers_ms: 500 },
      },
      'cfg.yaml',
    );
    expect(c).toMatchObject({
      max_body_buffer: 2048,
      ca_dir: 'certs',
      direct: true,
      timeouts: { headers_ms: 500 },
    });
    expect(parseHttpConfig({ direct: false }).direct).toBe(false);
    expect(() => parseHttpConfig({ direct: 'no' }, 'cfg.yaml')).toThrowError(
      /cfg.yaml: http.direct: must be true or false/,
    );
    expect(() => parseHttpConfig({ max_body: 1 }, 'cfg.yaml')).toThrowError(
      /cfg.yaml: http.max_body: unknown key/,
    );
    expect(() => parseHttpConfig({ max_body_buffer: -1 }, 'cfg.yaml')).toThrowError(
      expect.objectContaining({ code: 'E_CONFIG' }),
    );
    expect(() => parseHttpConfig({ upstream_map: { 'a.test': 'x' } })).toThrowError(/upstream_map/);
  });
  it('rejects non-positive limits', () => {
    expect(() => resolveLimits({ maxBodyBuffer: 0 })).toThrowError(
      expect.objectContaining({ code: 'E_CONFIG' }),
    );
  });
});
