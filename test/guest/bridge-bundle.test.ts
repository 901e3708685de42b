import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCelgateError } from '../../src/errors.js';
import { execOnGuest } from '../../src/transport/exec/client.js';
import { parseBridgeArgs } from '../../src/transport/guest/args.js';

const ENTRY = fileURLToPath(new URL('../../src/transport/guest/standalone.ts', import.meta.url));

describe('guest bridge flags', () => {
  it('applies the documented defaults', () => {
    expect(parseBridgeArgs(['--uds-base', '/run/v'])).toMatchObject({
      mode: 'uds',
      udsBase: '/run/v',
      ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
      forward: { host: '127.0.0.1', port: 15001 },
      dns: { host: '127.0.0.1', port: 53 },
      mcpSocket: '/run/celgate/mcp.sock',
      exec: true,
      execListen: null,
    });
  });
  it('switches parts off and accepts --flag=value', () => {
    expect(
      parseBridgeArgs([
        '--mode=tcp',
        '--forward',
        'off',
        '--dns=off',
        '--mcp-socket',
        'off',
        '--exec-listen',
        '[::1]:7000',
      ]),
    ).toMatchObject({
      mode: 'tcp',
      forward: null,
      dns: null,
      mcpSocket: null,
      execListen: { host: '::1', port: 7000 },
    });
  });
  it.each([
    [['--mode', 'udp']],
    [[]], // uds mode without --uds-base
    [['--mode', 'tcp', '--forward', 'nocolon']],
    [['--mode', 'tcp', '--port-http', '-1']],
    [['--mode', 'tcp', '--dns']],
    [['--mode', 'tcp', '--frobnicate']],
  ])('refuses %j with E_CONFIG', (argv) => {
    try {
      parseBridgeArgs(argv);
      expect.unreachable();
    } catch (e) {
      expect(isCelgateError(e, 'E_CONFIG')).toBe(true);
    }
  });
});

describe('single-file guest bridge bundle', () => {
  let dir: string;
  let bundle: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-bundle-'));
    bundle = join(dir, 'celgate-guest-bridge.mjs');
    await build({
      entryPoints: [ENTRY],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      outfile: bundle,
      logLevel: 'silent',
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is self-contained: runs from a directory with no node_modules', () => {
    const r = spawnSync(process.execPath, [bundle, '--help'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--uds-base');
    expect(readFileSync(bundle, 'utf8')).not.toMatch(/better-sqlite3|cel-js/);
  });

  it('starts and serves exec requests in tcp mode', async () => {
    const child = spawn(
      process.execPath,
      [
        bundle,
        '--mode',
        'tcp',
        '--forward',
        '127.0.0.1:0',
        '--dns',
        '127.0.0.1:0',
        '--mcp-socket',
        'off',
        '--exec-listen',
        '127.0.0.1:0',
      ],
      { cwd: dir },
    );
    try {
      const ready = await new Promise<any>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
        });
        child.once('exit', (code) => reject(new Error(`bundle exited ${code}`)));
      });
      const [host, port] = [
        ready.addresses.exec.split(':')[0],
        Number(ready.addresses.exec.split(':')[1]),
      ];
      const r = await execOnGuest(
        { mode: 'tcp', host, port },
        {
          v: 1,
          id: 'b1',
          argv: ['echo', 'bundled'],
          cwd: '/',
          env: {},
          timeout_ms: 5000,
          stdin: '',
        },
      );
      expect(r).toMatchObject({ exit_code: 0 });
      if (!('error' in r)) expect(Buffer.from(r.stdout, 'base64').toString()).toBe('bundled\n');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('runs the MCP stdio shim: stdin reaches the relay socket after a META preamble', async () => {
    const sock = join(dir, 'relay.sock');
    const got = new Promise<Buffer>((resolve) => {
      const srv = net.createServer((c) => {
        const parts: Buffer[] = [];
        c.on('data', (b: Buffer) => parts.push(b));
        c.on('end', () => {
          c.end(); // like the relay: the client's EOF closes the stream, and the shim exits
          srv.close();
          resolve(Buffer.concat(parts));
        });
      });
      srv.listen(sock);
    });
    await new Promise((r) => setTimeout(r, 50));
    const child = spawn(
      process.execPath,
      [bundle, 'mcp-shim', '--socket', sock, '--process-name', 'tester'],
      { cwd: dir },
    );
    child.stdin.end('{"jsonrpc":"2.0","id":1,"method":"ping"}\n');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    const bytes = (await got).toString();
    expect(bytes.startsWith('\0META {"process_name":"tester"')).toBe(true);
    expect(bytes).toContain('"method":"ping"');
  });

  it('exits 2 with the usage on a bad flag', () => {
    const r = spawnSync(process.execPath, [bundle, '--mode', 'carrier-pigeon'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--mode must be uds or tcp/);
  });
});
