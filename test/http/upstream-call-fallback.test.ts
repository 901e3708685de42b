/**
 * The one upstream client without llhttp (CELGATE_HTTP_NO_LLHTTP=1): the pool parses responses
 * with response-parser.ts, and the UpstreamCall suite runs again on it; plus the fallback parser's
 * strictness on framing.
 */
import { describe, expect, it } from 'vitest';

process.env.CELGATE_HTTP_NO_LLHTTP = '1';
const { LLHTTP } = await import('../../src/transport/http/llhttp.js');
const { fallbackResponseParser } = await import('../../src/transport/http/response-parser.js');
await import('./upstream-call.test.js');

describe('the fallback response parser', () => {
  it('is the one in use', () => expect(LLHTTP.ok).toBe(false));

  const parse = (text: string) => {
    const p = fallbackResponseParser(16 * 1024);
    const seen: string[] = [];
    p[2] = (_a: number, _b: number, h: string[], _m: null, _u: null, s: number) => {
      seen.push(`head ${s} ${h.join('=')}`);
      return 0;
    };
    p[3] = (b: Buffer) => seen.push(`body ${b.toString()}`);
    p[4] = () => seen.push('end');
    const r = p.execute(Buffer.from(text));
    return { r, seen };
  };

  it('parses sized and chunked bodies and refuses ambiguous framing', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok').seen).toEqual([
      'head 200 Content-Length=2',
      'body ok',
      'end',
    ]);
    expect(
      parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nT: 1\r\n\r\n')
        .seen,
    ).toEqual(['head 200 Transfer-Encoding=chunked', 'body ok', 'end']);
    for (const bad of [
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\nX: bare-lf\r\n\r\n',
    ])
      expect(parse(bad).r).toBeInstanceOf(Error);
  });
});
