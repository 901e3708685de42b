import { describe, expect, it } from 'vitest';
import { leafSubject } from '../../src/certs/index.js';

describe('leafSubject', () => {
  it.each([
    ['Example.COM', { kind: 'dns', name: 'example.com' }],
    ['api.example.com.', { kind: 'dns', name: 'api.example.com' }],
    ['*.example.com', { kind: 'dns', name: '*.example.com' }],
    ['under_score.test', { kind: 'dns', name: 'under_score.test' }],
    ['127.0.0.1', { kind: 'ip', name: '127.0.0.1', version: 4 }],
    ['[::1]', { kind: 'ip', name: '::1', version: 6 }],
    ['2001:DB8:0:0::1', { kind: 'ip', name: '2001:db8::1', version: 6 }],
  ])('normalises %s', (input, expected) => {
    expect(leafSubject(input)).toEqual(expected);
  });

  it.each([
    ['', 'E_PARSE'],
    ['a..b', 'E_PARSE'],
    ['-lead.example', 'E_PARSE'],
    ['sp ace.example', 'E_PARSE'],
    ['host/path', 'E_PARSE'],
    ['a.*.example', 'E_PARSE'],
    ['bad\u0000nul', 'E_PARSE'],
    [`${'a'.repeat(64)}.example`, 'E_PARSE'],
    [`${'abcdefghi.'.repeat(26)}com`, 'E_LIMIT'],
    ['x'.repeat(10_000), 'E_LIMIT'],
  ])('refuses %j with %s', (input, code) => {
    expect(() => leafSubject(input)).toThrow(expect.objectContaining({ code }));
  });
});
