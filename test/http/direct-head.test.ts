/**
 * The direct path's pure head rules (src/transport/http/direct-head.ts): which request heads it
 * takes and with what body length, and the response head it writes to the guest.
 */
import { describe, expect, it } from 'vitest';
import type { HeaderMap } from '../../src/events/index.js';
import type { SecretStore } from '../../src/transport/secrets.js';
import { directBodyLength, responseHead } from '../../src/transport/http/direct-head.js';
import type { ExchangeDeps } from '../../src/transport/http/exchange.js';

type Deps = Pick<ExchangeDeps, 'decider' | 'mcp'>;

function deps(o: { bodies?: string[]; ask?: boolean; mcpHosts?: string[] } = {}): Deps {
  return {
    decider: {
      decide: () => {
        throw new Error('not used');
      },
      needsBody: (t: string) => (o.bodies ?? []).includes(t),
      mayAsk: () => o.ask === true,
    } as unknown as Deps['decider'],
    mcp: {
      candidateHead: (host: string, contentType: string) =>
        (o.mcpHosts ?? []).includes(host) && contentType === 'application/json',
    } as unknown as Deps['mcp'],
  };
}

describe('directBodyLength', () => {
  it('takes a bodiless request as length 0 and a Content-Length body as its length', () => {
    expect(directBodyLength(['Host', 'a.test'], '', true, deps())).toBe(0);
    expect(directBodyLength(['Host', 'a.test', 'Content-Length', '12'], '', false, deps())).toBe(
      12,
    );
  });

  it('hands over Expect, chunked, an unsized body and an unsafe length', () => {
    expect(directBodyLength(['Expect', '100-continue'], '', true, deps())).toBe(-1);
    expect(directBodyLength(['Transfer-Encoding', 'chunked'], '', false, deps())).toBe(-1);
    expect(directBodyLength(['Host', 'a.test'], '', false, deps())).toBe(-1);
    expect(directBodyLength(['Content-Length', '9007199254740993'], '', false, deps())).toBe(-1);
  });

  it('hands over every request while a rule reads bodies or an ask rule could hold one', () => {
    expect(
      directBodyLength(['Content-Length', '3'], '', false, deps({ bodies: ['http.request'] })),
    ).toBe(-1);
    expect(directBodyLength([], '', true, deps({ bodies: ['http.request'] }))).toBe(0);
    expect(directBodyLength([], '', true, deps({ bodies: ['http.response'] }))).toBe(-1);
    expect(directBodyLength([], '', true, deps({ ask: true }))).toBe(-1);
  });

  it('hands over a possible MCP message, naming the host by SNI first, else by Host', () => {
    const head = ['Host', 'mcp.test:8443', 'Content-Type', 'application/json'];
    expect(directBodyLength(head, '', true, deps({ mcpHosts: ['mcp.test'] }))).toBe(-1);
    expect(directBodyLength(head, 'other.test', true, deps({ mcpHosts: ['mcp.test'] }))).toBe(0);
  });
});

describe('responseHead', () => {
  const plain = { secrets: undefined, scrub: false, noBody: false, http11: true };
  const headers = (raw: string[]): HeaderMap => {
    const h: Record<string, string> = {};
    for (let i = 0; i < raw.length; i += 2) h[raw[i]!.toLowerCase()] = raw[i + 1]!;
    return h as HeaderMap;
  };

  it('keeps a sized response, drops hop-by-hop headers and those Connection names', () => {
    const raw = [
      'Content-Length',
      '5',
      'Connection',
      'keep-alive, X-Hop',
      'Keep-Alive',
      'timeout=5',
      'X-Hop',
      '1',
      'Date',
      'Sat, 05 Dec 2026 10:00:00 GMT',
      'X-Kept',
      'yes',
    ];
    const h = responseHead(200, 'OK', raw, headers(raw), plain);
    expect(h).toEqual({
      text: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: Sat, 05 Dec 2026 10:00:00 GMT\r\nX-Kept: yes\r\n',
      chunked: false,
      untilClose: false,
    });
  });

  it('frames an unsized body chunked for HTTP/1.1 and until close for HTTP/1.0, adds a Date', () => {
    const raw = ['Transfer-Encoding', 'chunked'];
    const h11 = responseHead(200, '', raw, headers(raw), plain);
    expect(h11.text).toMatch(
      /^HTTP\/1\.1 200 OK\r\nDate: .+ GMT\r\nTransfer-Encoding: chunked\r\n$/,
    );
    expect(h11).toMatchObject({ chunked: true, untilClose: false });
    const h10 = responseHead(200, '', raw, headers(raw), { ...plain, http11: false });
    expect(h10).toMatchObject({ chunked: false, untilClose: true });
    expect(h10.text).not.toMatch(/Transfer-Encoding/);
  });

  it('sends no framing for a bodiless answer', () => {
    const h = responseHead(304, '', [], {} as HeaderMap, { ...plain, noBody: true });
    expect(h).toMatchObject({ chunked: false, untilClose: false });
    expect(h.text).toMatch(/^HTTP\/1\.1 304 Not Modified\r\n/);
  });

  it('replaces echoed secrets in header values and re-frames a scrubbed body', () => {
    const secrets = { scrub: (v: string) => v.replaceAll('s3cret', '{{API_KEY}}') } as SecretStore;
    const raw = ['Content-Length', '40', 'X-Echo', 'token s3cret'];
    const h = responseHead(200, 'OK', raw, headers(raw), { ...plain, secrets, scrub: true });
    expect(h.text).toContain('X-Echo: token {{API_KEY}}\r\n');
    expect(h.text).not.toContain('Content-Length');
    expect(h).toMatchObject({ chunked: true, untilClose: false });
  });
});
