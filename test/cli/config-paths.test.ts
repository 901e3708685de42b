/**
 * Every relative path in a config file resolves against the file, not the working directory, and
 * a path error names the config file.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/gateway/config.js';
import { readExtraCa } from '../../src/transport/http/config.js';

it('resolves data_dir, log.file, control.socket, vsock.uds_base, http.ca_dir and http.extra_ca against the config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'celgate-cfgpaths-'));
  mkdirSync(join(dir, 'etc'));
  const file = join(dir, 'etc', 'gateway.yaml');
  writeFileSync(
    file,
    'data_dir: ../var\nlog: { file: logs/gw.jsonl }\ncontrol: { socket: run/ctl.sock }\nvsock: { mode: uds, uds_base: run/v.sock }\nhttp: { ca_dir: certs, extra_ca: [ca/up.pem] }\n',
  );
  const c = loadConfig(file);
  expect(c.data_dir).toBe(join(dir, 'var'));
  expect(c.log.file).toBe(join(dir, 'etc', 'logs', 'gw.jsonl'));
  expect(c.control.socket).toBe(join(dir, 'etc', 'run', 'ctl.sock'));
  expect(c.vsock.uds_base).toBe(join(dir, 'etc', 'run', 'v.sock'));
  expect(c.http.ca_dir).toBe(join(dir, 'etc', 'certs'));
  expect(c.http.extra_ca).toEqual([join(dir, 'etc', 'ca', 'up.pem')]);
  expect(() => readExtraCa(c.http.extra_ca, c.source)).toThrow(
    new RegExp(
      `^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: http\\.extra_ca: cannot read .*up\\.pem: ENOENT`,
    ),
  );
  // A flag overrides and resolves against the working directory.
  expect(loadConfig(file, { data_dir: 'here' }).data_dir).toMatch(/here$/);
});
