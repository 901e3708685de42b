/**
 * /metrics scrape with 1,000 installed rules (issue #3 goal ≤ 20 ms): the prom-client registry
 * built by src/control/metrics.ts, measured directly and over a real control socket. Rules have
 * matched before the scrape, so the exposition carries real counter values (checked).
 *
 * usage: node dist/bench/metrics.js   (writes benchmarks/security-engine/micro-metrics.json)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecisionCounters } from '../src/control/counters.js';
import { createMetrics } from '../src/control/metrics.js';
import { createPolicyPort } from '../src/control/policy-port.js';
import { Router, startControlServer } from '../src/control/server.js';
import { dnsRequestEvent } from '../src/events/build.js';
import { summarize, writeArtifact, type Artifact } from './artifact.js';
import { runIfMain } from './micro-kit.js';

export const RULES = 1000;
export const SCRAPES = 60;
export const GOAL_SCRAPE_MS = 20;

function scrape(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

export async function run(): Promise<Artifact[]> {
  const policy = createPolicyPort({ packPaths: [] });
  for (let i = 0; i < RULES; i++) {
    const out = policy.putRule(`rule-${i}`, {
      condition: `dns.request.qname == "h${i}.example"`,
      action: i % 2 === 0 ? 'block' : 'allow',
      priority: i % 100,
    });
    if (!out.ok) throw new Error(`rule-${i}: ${JSON.stringify(out.issues)}`);
  }
  const counters = new DecisionCounters();
  for (let i = 0; i < RULES; i++) {
    const e = dnsRequestEvent(
      { session_id: 'bench' },
      { qname: `h${i}.example`, qtype: 'A', qclass: 'IN', transport: 'udp' },
    );
    counters.record(e, policy.decider.decide(e));
  }
  const metrics = createMetrics({
    counters,
    policy,
    ledger: () => ({
      queued: 0,
      written: 0,
      batches: 0,
      failed_batches: 0,
      rejected_rows: 0,
      last_error: null,
      last_flush_ms: null,
    }),
  });
  const dir = mkdtempSync(join(tmpdir(), 'celgate-bench-metrics-'));
  const socket = join(dir, 'control.sock');
  const server = await startControlServer({
    socket,
    tcp: null,
    token: null,
    allowNonLoopback: false,
    router: new Router().add({
      method: 'GET',
      path: '/metrics',
      handler: async () => ({ text: await metrics.scrape(), contentType: metrics.contentType }),
    }),
  });
  try {
    const direct: number[] = [];
    const overSocket: number[] = [];
    let text = '';
    for (let i = 0; i < 5; i++) await metrics.scrape(); // warm-up
    for (let i = 0; i < SCRAPES; i++) {
      let t = performance.now();
      text = await metrics.scrape();
      direct.push(performance.now() - t);
      t = performance.now();
      text = await scrape(socket);
      overSocket.push(performance.now() - t);
    }
    const ruleLines = text
      .split('\n')
      .filter((l) => l.startsWith('celgate_rule_matches_total{')).length;
    const results = {
      'Render /metrics with 1,000 rules (metrics.scrape)': summarize(direct),
      'Scrape GET /metrics with 1,000 rules over the control socket': summarize(overSocket),
    };
    const socketScrape = results['Scrape GET /metrics with 1,000 rules over the control socket'];
    return [
      writeArtifact({
        kind: 'micro',
        name: 'metrics',
        results,
        runs: SCRAPES,
        assertions: [
          {
            name: 'the exposition has one match series per rule',
            ok: ruleLines === RULES,
            detail: `${ruleLines} series`,
          },
          {
            name: 'counters carry the recorded matches',
            ok: /celgate_rule_matches_total\{rule="rule-7",pack="runtime"\} 1/.test(text),
            detail: 'rule-7 matched once',
          },
          {
            name: `goal: scrape with ${RULES} rules ≤ ${GOAL_SCRAPE_MS} ms (median over the socket)`,
            ok: socketScrape.median <= GOAL_SCRAPE_MS,
            detail: `median ${socketScrape.median.toFixed(2)} ms, p95 ${socketScrape.p95.toFixed(2)} ms, max ${socketScrape.max.toFixed(2)} ms`,
          },
        ],
        notes: { rules: RULES, bytes: text.length },
      }),
    ];
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta.url, run);
