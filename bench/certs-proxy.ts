/**
 * Explicit proxy benchmarks (issue #4): the proxy in this process, on the same rig as
 * test/http-proxy (gateway CA, separate upstream CA, loopback upstreams, scripted decider), and
 * the clients in a child process (bench/certs-client.ts) or on one kept-alive tunnel. One artifact
 * `certs-proxy` under benchmarks/security-engine/:
 *
 *  - "Proxy first contact: CONNECT + mint + TLS handshake": a new host per tunnel; goal p50 ≤ 5 ms;
 *    asserts every handshake verified against the gateway CA with a leaf for that host;
 *  - "Proxy repeat contact: CONNECT + TLS handshake, cached leaf";
 *  - "Blocked request on a kept-alive tunnel": goal p50 ≤ 1 ms; asserts every answer was a 403
 *    naming the rule, all on one connection, and the upstream saw nothing.
 *
 * usage: npm run -s build && node dist/bench/certs-proxy.js [--runs N]   (exits 1 when a goal fails)
 */
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { reqOf } from '../support/http-harness.js';
import { clientOver, tlsThroughTunnel } from '../support/proxy-clients.js';
import { startProxyRig } from '../support/proxy-rig.js';
import {
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
  type Summary,
} from './artifact.js';
import { clientRun, printMs } from './certs.js';

export const PROXY_FIRST_CONTACT_P50_GOAL_MS = 5;
export const PROXY_BLOCKED_P50_GOAL_MS = 1;
const RULE_ID = 'bench-proxy-deny';
const argRuns = process.argv.indexOf('--runs');
const RUNS = argRuns > 0 ? Number(process.argv[argRuns + 1]) : 300;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

export async function run(): Promise<Artifact> {
  const rig = await startProxyRig();
  const assertions: AssertionResult[] = [];
  const results: Record<string, Summary> = {};
  const notes: Record<string, unknown> = { runs: RUNS, loadavg_at_start: loadavg()[0] };
  try {
    const ca = rig.gatewayCerts.caPem;
    const hosts = Array.from({ length: RUNS }, (_, i) => `first-${i}.bench.test`);
    const first = await clientRun({ port: rig.port, ca, hosts, mode: 'proxy', concurrency: 1 });
    results['Proxy first contact: CONNECT + mint + TLS handshake'] = summarize(
      first.map((c) => c.ms),
    );
    const bad = first.filter((c) => !c.ok).length;
    assertions.push({
      name: 'every first contact verified against the gateway CA with a leaf for its host',
      ok: bad === 0,
      detail: `${bad} of ${RUNS} failed`,
    });
    const repeat = await clientRun({
      port: rig.port,
      ca,
      hosts: Array.from({ length: RUNS }, () => hosts[0]!),
      mode: 'proxy',
      concurrency: 1,
    });
    results['Proxy repeat contact: CONNECT + TLS handshake, cached leaf'] = summarize(
      repeat.map((c) => c.ms),
    );
    assertions.push({
      name: 'every repeat contact verified',
      ok: repeat.every((c) => c.ok),
      detail: `${repeat.filter((c) => !c.ok).length} failed`,
    });

    rig.decider.set([
      {
        id: RULE_ID,
        action: 'block',
        reason: 'benchmark denial',
        when: (e) => reqOf(e)?.path === '/deny',
      },
    ]);
    const seen = rig.https.seen.length;
    const socket = await tlsThroughTunnel(rig.port, 'api.test:443', ca, 'api.test');
    const client = clientOver('https://api.test', socket);
    const times: number[] = [];
    let denied = 0;
    for (let i = 0; i < RUNS + 50; i++) {
      const t0 = process.hrtime.bigint();
      const r = await client.request({ path: '/deny', method: 'GET' });
      const text = await r.body.text();
      const took = ms(t0);
      if (i < 50) continue; // warm-up
      times.push(took);
      if (r.statusCode === 403 && text.includes(RULE_ID)) denied += 1;
    }
    await client.close();
    results['Blocked request on a kept-alive tunnel'] = summarize(times);
    assertions.push({
      name: 'every blocked request answered 403 naming the rule',
      ok: denied === RUNS,
      detail: `${denied} of ${RUNS}`,
    });
    assertions.push({
      name: 'all blocked requests on one connection',
      ok: client.connects() === 1,
      detail: `${client.connects()} connections`,
    });
    assertions.push({
      name: 'the upstream saw none of them',
      ok: rig.https.seen.length === seen,
      detail: `${rig.https.seen.length - seen} reached upstream`,
    });

    const p50 = results['Proxy first contact: CONNECT + mint + TLS handshake']!.median;
    const blocked = results['Blocked request on a kept-alive tunnel']!.median;
    assertions.push({
      name: `goal: proxy first contact p50 ≤ ${PROXY_FIRST_CONTACT_P50_GOAL_MS} ms`,
      ok: p50 <= PROXY_FIRST_CONTACT_P50_GOAL_MS,
      detail: `p50 ${p50.toFixed(3)} ms`,
    });
    assertions.push({
      name: `goal: blocked request p50 ≤ ${PROXY_BLOCKED_P50_GOAL_MS} ms`,
      ok: blocked <= PROXY_BLOCKED_P50_GOAL_MS,
      detail: `p50 ${blocked.toFixed(3)} ms`,
    });
    notes.loadavg_at_end = loadavg()[0];
  } finally {
    await rig.close();
  }
  return writeArtifact({
    kind: 'micro',
    name: 'certs-proxy',
    results,
    assertions,
    runs: RUNS,
    notes,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const a = await run();
  printMs(a);
  process.exitCode = a.status === 'failed' ? 1 : 0;
}
