/**
 * The guest side meets the host side: the guest bridge's DNS stub (src/transport/guest/dns-stub.ts)
 * relaying to the DNS service's vsock port in uds (hybrid-vsock) mode, answered by policy and a
 * loopback upstream. UDP and TCP clients of the stub, as programs inside a guest would be.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsStub, type DnsStubHandle } from '../../src/transport/guest/dns-stub.js';
import { startAuthority, type Authority } from '../../bench/dns-authority.js';
import { blockRule, startHarness, type Harness } from './harness.js';

let dir: string;
let upstream: Authority;
let h: Harness;
let stub: DnsStubHandle;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'celgate-dns-bridge-'));
  const udsBase = join(dir, 'vsock');
  upstream = await startAuthority({
    'pypi.org': [{ type: 'A', data: '192.0.2.80' }],
    'paste.test': [{ type: 'A', data: '192.0.2.81' }],
  });
  h = await startHarness({
    vsock: { mode: 'uds', udsBase, port: 5007 },
    listen: null,
    upstreams: [upstream.address],
  });
  expect(h.registry.installRaw(blockRule('no-paste', 'dns.request.qname == "paste.test"')).ok).toBe(
    true,
  );
  stub = await startDnsStub({
    host: '127.0.0.1',
    port: 0,
    upstream: { mode: 'uds', udsBase, port: 5007 },
  });
});

afterAll(async () => {
  await stub?.close();
  await h?.close();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('guest DNS stub → vsock → celgate DNS service', () => {
  it('resolves allowed names and NXDOMAINs blocked ones for a guest resolver, over UDP and TCP', async () => {
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([`127.0.0.1:${stub.port}`]);
    expect(await r.resolve4('pypi.org')).toEqual(['192.0.2.80']);
    await expect(r.resolve4('paste.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await new Promise<void>((res) => setImmediate(res));
    const rows = h.sink.dnsRows.filter((x) => x.transport === 'vsock');
    expect(rows.map((x) => [x.qname, x.rcode, x.rule_id])).toEqual([
      ['pypi.org', 'NOERROR', null],
      ['paste.test', 'NXDOMAIN', 'no-paste'],
    ]);
  });
});
