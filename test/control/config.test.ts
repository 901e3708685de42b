import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, newSessionId, sessionPaths } from '../../src/gateway/config.js';
import { flagsToOverrides } from '../../src/cli/start.js';
import { packPaths } from '../../src/gateway/compose.js';

const dir = () => mkdtempSync(join(tmpdir(), 'celgate-cfg-'));
function file(name: string, text: string): string {
  const d = dir();
  writeFileSync(join(d, name), text);
  return join(d, name);
}

describe('gateway configuration', () => {
  it('has complete defaults without any file', () => {
    const c = loadConfig();
    expect(c).toMatchObject({
      profile: 'balanced',
      rules: [],
      detection: [],
      control: { tcp: null, token: null, allow_non_loopback: false },
      vsock: {
        mode: 'tcp',
        host: '127.0.0.1',
        uds_base: null,
        ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
      },
      log: { level: 'info', file: null },
      watch_rules: true,
    });
    expect(c.control.socket).toBe(join(c.data_dir, 'control.sock'));
    expect(sessionPaths(c).sessionDb).toBe(
      join(c.data_dir, 'sessions', c.session_id, 'session.db'),
    );
  });

  it('generates time-sortable session ids', () => {
    const a = newSessionId(new Date('2026-01-01T00:00:00Z'));
    const b = newSessionId(new Date('2026-01-01T00:00:01Z'));
    expect(a < b).toBe(true);
    expect(a).toMatch(/^20260101T000000Z-[0-9a-f]{8}$/);
  });

  it('reads YAML and JSON, resolves rule paths against the file, and applies CLI overrides last', () => {
    const y = file(
      'gw.yaml',
      'data_dir: /tmp/x\nrules: [extra]\nvsock: {ports: {http: 0}}\nlog: {level: debug}\n',
    );
    const c = loadConfig(
      y,
      flagsToOverrides({ portDns: 0, session: 'my-session', controlSocket: '/tmp/x/c.sock' }),
    );
    expect(c.rules).toEqual([join(y, '..', 'extra')]);
    expect(c.vsock.ports).toMatchObject({ http: 0, dns: 0, mcp: 5003 });
    expect(c).toMatchObject({
      session_id: 'my-session',
      data_dir: '/tmp/x',
      log: { level: 'debug' },
      control: { socket: '/tmp/x/c.sock' },
    });
    const j = file('gw.json', JSON.stringify({ profile: 'locked', watch_rules: false }));
    expect(loadConfig(j)).toMatchObject({ profile: 'locked', watch_rules: false });
    expect(packPaths(loadConfig(j))[0]).toMatch(/rules\/locked\.yaml$/);
  });

  it.each([
    ['an unknown key, with a hint', 'vsock: {prots: {}}\n', /vsock\.prots: unknown key/],
    ['a bad port', 'vsock: {ports: {http: 70000}}\n', /vsock\.ports\.http: must be a port/],
    ['a bad mode', 'vsock: {mode: serial}\n', /vsock\.mode: must be one of tcp, uds/],
    ['uds without a base', 'vsock: {mode: uds}\n', /vsock\.uds_base: is required/],
    [
      'tcp control without a token',
      'control: {tcp: "127.0.0.1:9000"}\n',
      /control\.token: is required/,
    ],
    ['a short token', 'control: {tcp: "127.0.0.1:9000", token: abc}\n', /at least 16/],
    ['a session id with a slash', 'session_id: ../../etc\n', /session_id: must match/],
    ['invalid YAML', 'a: [1, 2\n', /not valid YAML/],
    ['a list at the top', '- 1\n', /must be a mapping/],
    ['a bad log level', 'log: {level: loud}\n', /log\.level/],
  ])('refuses %s with E_CONFIG naming the file and key', (_n, text, message) => {
    const f = file('bad.yaml', text);
    let err: any;
    try {
      loadConfig(f);
    } catch (e) {
      err = e;
    }
    expect(err?.code).toBe('E_CONFIG');
    expect(err.message).toMatch(message);
    expect(err.message).toContain(f);
  });

  it('refuses a missing file', () => {
    expect(() => loadConfig('/nonexistent/celgate.yaml')).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    );
  });
});
