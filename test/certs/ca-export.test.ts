import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celgate-export-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('celgate ca export', () => {
  it('prints the CA PEM on stdout and the trust lines on stderr', () => {
    const certs = join(dir, 'certs');
    const run = spawnSync(process.execPath, [main, 'ca', 'export', '--dir', certs], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    const x = new X509Certificate(run.stdout);
    expect(x.ca).toBe(true);
    const certPath = join(certs, 'ca.cert.pem');
    for (const line of [
      `export NODE_EXTRA_CA_CERTS=${certPath}`,
      `export SSL_CERT_FILE=${certPath}`,
      `export REQUESTS_CA_BUNDLE=${certPath}`,
      'update-ca-certificates',
    ]) {
      expect(run.stderr).toContain(line);
    }
    const again = spawnSync(
      process.execPath,
      [main, 'ca', 'export', '--dir', certs, '--pem-only'],
      { encoding: 'utf8' },
    );
    expect(again.stdout).toBe(run.stdout);
    expect(again.stderr).toBe('');
  });

  it('fails with a clear message and exit code 1 when the directory cannot be used', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const run = spawnSync(process.execPath, [main, 'ca', 'export', '--dir', join(file, 'certs')], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/celgate ca export: E_CONFIG/);
  });
});

describe('celgate ca path', () => {
  it('uses http.ca_dir from --config, and --dir over it', async () => {
    const cfg = join(dir, 'cfg.yaml');
    const fromConfig = join(dir, 'from-config');
    await writeFile(cfg, `http:\n  ca_dir: ${fromConfig}\n`);
    const a = spawnSync(process.execPath, [main, 'ca', 'path', '--config', cfg], {
      encoding: 'utf8',
    });
    expect(a.stderr).toBe('');
    expect(a.stdout.trim()).toBe(join(fromConfig, 'ca.cert.pem'));
    const explicit = join(dir, 'explicit');
    const b = spawnSync(
      process.execPath,
      [main, 'ca', 'path', '--config', cfg, '--dir', explicit],
      { encoding: 'utf8' },
    );
    expect(b.stdout.trim()).toBe(join(explicit, 'ca.cert.pem'));
  });
});
