/**
 * IPv6 from a namespace guest: the recipe redirects TCP 80/443 over IPv6 as it does over IPv4
 * (ip6tables to the bridge's [::1] forwarder), so `curl -6` reaches the gateway — judged, recorded,
 * blocked where a rule says so — instead of leaving the guest unseen.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_IP6TABLES } from '../../bench/guest-netns.js';
import { makeCerts, startUpstream, type Certs, type Upstream } from '../../support/http-harness.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { GuestNamespace, netnsAvailability } from '../support/netns.js';

const avail = netnsAvailability();
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;
const ok = avail.ok && HAVE_IP6TABLES && HAVE_CURL;

describe.skipIf(!ok)(
  `IPv6 from a namespace guest${ok ? '' : ` (skipped: ${avail.ok ? 'needs ip6tables and curl' : avail.reason})`}`,
  () => {
    let dir: string;
    let certs: Certs;
    let up: Upstream;
    let gw: RunningTestGateway;
    let guest: GuestNamespace;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'celgate-v6-'));
      certs = await makeCerts();
      writeFileSync(join(dir, 'up-ca.pem'), certs.caPem);
      writeFileSync(
        join(dir, 'r.yaml'),
        'id: v6\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-admin\n    condition: http.request.path.startsWith("/admin")\n    action: block\n',
      );
      up = await startUpstream(certs, (req, res) => res.end(`upstream saw ${req.url}`));
      gw = await startGateway({
        config: {
          rules: [join(dir, 'r.yaml')],
          vsock: {
            mode: 'uds',
            uds_base: join(dir, 'vsock'),
            ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
          },
          http: {
            ca_dir: join(dir, 'certs'),
            extra_ca: [join(dir, 'up-ca.pem')],
            upstream_map: { 'api.test': `127.0.0.1:${up.port}` },
          },
        },
      });
      guest = await GuestNamespace.create({
        udsBase: join(dir, 'vsock'),
        workDir: join(dir, 'guest'),
      });
    });

    afterAll(async () => {
      await guest?.destroy();
      await gw?.stop();
      await up?.close();
      certs?.cleanup();
    });

    const curl6 = (path: string) =>
      guest.run([
        'curl',
        '-6',
        '-sS',
        '--max-time',
        '10',
        '--cacert',
        join(dir, 'certs', 'ca.cert.pem'),
        '--resolve',
        'api.test:443:[2001:db8::10]',
        '-w',
        '\n%{http_code}',
        `https://api.test${path}`,
      ]);

    it('curl -6 reaches the gateway, which forwards an allowed request and blocks another', async () => {
      expect(guest.addresses.forward6).toMatch(/^\[?::1\]?:\d+$/);
      const allowed = await curl6('/v6');
      expect(allowed.stderr).toBe('');
      expect(allowed.stdout).toBe('upstream saw /v6\n200');
      const blocked = await curl6('/admin');
      expect(blocked.stdout.trim().split('\n').at(-1)).toBe('403');
      const events = (await gw.api('GET', '/v1/events?limit=5&event_type=http.request')).json
        .events as { decision: string; rule_id: string | null }[];
      expect(events[0]).toMatchObject({ decision: 'block', rule_id: 'no-admin' });
    });
  },
);
