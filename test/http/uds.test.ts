import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpService, type HttpService } from '../../src/transport/http/index.js';
import { parseUpstreamMap } from '../../src/transport/http/upstream.js';
import { connectVsock } from '../../src/transport/vsock.js';
import {
  MemorySink,
  ScriptedDecider,
  makeCerts,
  startUpstream,
  type Certs,
  type Upstream,
} from '../../support/http-harness.js';

let certs: Certs;
let up: Upstream;
let svc: HttpService;
let dir: string;
const sink = new MemorySink();
const decider = new ScriptedDecider();

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res) => res.end(`hello ${req.url}`));
  dir = mkdtempSync(join(tmpdir(), 'celgate-http-uds-'));
  const map = parseUpstreamMap([`vm.test=127.0.0.1:${up.port}`]);
  if (!map.ok) throw new Error('bad map');
  svc = await startHttpService(
    {
      vsock: { mode: 'uds', port: 5002, udsBase: join(dir, 'vsock') },
      upstreamMap: map.value,
      extraCa: [certs.caPem],
    },
    { decider, sink, origin: { session_id: 'uds' }, certs: certs.leaves },
  );
});
afterAll(async () => {
  await svc?.close();
  await up?.close();
  certs?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTP service in hybrid-vsock (uds) mode', () => {
  it('listens on <base>_5002 and serves a guest that sends the META preamble before TLS', async () => {
    expect(svc.addresses.http).toBe(join(dir, 'vsock_5002'));
    const raw = await connectVsock(
      { mode: 'uds', port: 5002, udsBase: join(dir, 'vsock') },
      { process_name: 'node', pid: 4242 },
    );
    const s = tls.connect({ socket: raw, servername: 'vm.test', ca: certs.caPem });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    const out = await new Promise<string>((resolve) => {
      let o = '';
      s.on('data', (d: Buffer) => (o += d.toString()));
      s.once('close', () => resolve(o));
      s.write('GET /from-vm HTTP/1.1\r\nHost: vm.test\r\nConnection: close\r\n\r\n');
    });
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).toContain('hello /from-vm');
    const row = (await sink.waitNets(1))[0]!;
    expect(row).toMatchObject({
      host: 'vm.test',
      sni: 'vm.test',
      process_name: 'node',
      status: 200,
    });
  });
});
