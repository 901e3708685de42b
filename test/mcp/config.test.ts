/** The `mcp:` config section: defaults, a full example, and each refusal naming its key. */
import { describe, expect, it } from 'vitest';
import { parseMcpConfig } from '../../src/transport/mcp/config.js';
import { isCelgateError } from '../../src/errors.js';

describe('mcp config section', () => {
  it('defaults to no servers, a 30 s call timeout and no NDJSON listener', () => {
    expect(parseMcpConfig(undefined)).toEqual({
      servers: [],
      call_timeout_ms: 30_000,
      start_timeout_ms: 10_000,
      ndjson: null,
      remote: [],
    });
  });

  it('accepts mcp.remote endpoints, the path defaulting to "/"', () => {
    expect(
      parseMcpConfig({ remote: [{ host: 'mcp.example.com', path: '/mcp' }, { host: 'x.test' }] })
        .remote,
    ).toEqual([
      { host: 'mcp.example.com', path: '/mcp' },
      { host: 'x.test', path: '/' },
    ]);
  });

  it('accepts stdio and Streamable HTTP servers', () => {
    const c = parseMcpConfig({
      call_timeout_ms: 5000,
      servers: [
        { id: 'fs', command: 'node', args: ['server.js'], env: { A: '1' }, cwd: '/srv' },
        { id: 'web_1', url: 'http://127.0.0.1:9000/mcp', headers: { authorization: 'Bearer x' } },
      ],
    });
    expect(c.servers).toEqual([
      { id: 'fs', command: 'node', args: ['server.js'], env: { A: '1' }, cwd: '/srv' },
      { id: 'web_1', url: 'http://127.0.0.1:9000/mcp', headers: { authorization: 'Bearer x' } },
    ]);
    expect(c.call_timeout_ms).toBe(5000);
  });

  it.each([
    ['a server id with "__"', { servers: [{ id: 'a__b', command: 'x' }] }, 'mcp.servers'],
    [
      'duplicate ids',
      {
        servers: [
          { id: 'a', command: 'x' },
          { id: 'a', command: 'y' },
        ],
      },
      'duplicate',
    ],
    [
      'both command and url',
      { servers: [{ id: 'a', command: 'x', url: 'http://h/' }] },
      'exactly one',
    ],
    ['neither command nor url', { servers: [{ id: 'a' }] }, 'exactly one'],
    [
      'an unknown server key',
      { servers: [{ id: 'a', command: 'x', argv: [] }] },
      'mcp.servers[0].argv',
    ],
    ['an unknown section key', { timeout: 5 }, 'mcp.timeout'],
    ['a zero timeout', { call_timeout_ms: 0 }, 'mcp.call_timeout_ms'],
    ['non-string args', { servers: [{ id: 'a', command: 'x', args: [1] }] }, 'mcp.servers[0].args'],
    ['a non-http url', { servers: [{ id: 'a', url: 'file:///x' }] }, 'url'],
    ['a remote that is not a list', { remote: { host: 'a.test' } }, 'mcp.remote'],
    ['a remote host with a port', { remote: [{ host: 'a.test:443' }] }, 'mcp.remote[0].host'],
    ['an upper-case remote host', { remote: [{ host: 'A.test' }] }, 'mcp.remote[0].host'],
    ['a relative remote path', { remote: [{ host: 'a.test', path: 'mcp' }] }, 'mcp.remote[0].path'],
    [
      'a remote path with a query',
      { remote: [{ host: 'a.test', path: '/m?x' }] },
      'mcp.remote[0].path',
    ],
    ['an unknown remote key', { remote: [{ host: 'a.test', url: '/' }] }, 'mcp.remote[0].url'],
  ])('refuses %s with E_CONFIG naming the key', (_n, raw, where) => {
    try {
      parseMcpConfig(raw, 'gw.yaml');
      throw new Error('accepted');
    } catch (err) {
      expect(isCelgateError(err, 'E_CONFIG')).toBe(true);
      expect((err as Error).message).toContain('gw.yaml');
      expect((err as Error).message).toContain(where);
    }
  });
});
