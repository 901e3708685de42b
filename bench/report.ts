/**
 * The session report at scale (docs/report.md): a session.db of 100,000 events (HTTP, DNS, MCP,
 * exec; a tenth refused; findings) written with the real ledger writer, reported on, and opened in
 * Chromium. Asserts before timing that the file shows the counts session.db holds. Goals: the file
 * ≤ 2 MB and rendered (load → counts on screen) in ≤ 2 s. Artifact `micro-report`.
 *
 * usage: npm run -s build && node dist/bench/report.js   (exits 1 when a goal fails; skipped without chromium)
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dnsRequestEvent,
  httpRequestEvent,
  mcpRequestEvent,
  processExecEvent,
} from '../src/events/index.js';
import type { Decision } from '../src/events/decision.js';
import { reportHtml } from '../src/control/report-page.js';
import { reportData } from '../src/store/report-data.js';
import { openLedgerReadOnly } from '../src/store/schema.js';
import { LedgerWriter } from '../src/store/writer.js';
import {
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
  type Summary,
} from './artifact.js';

export const EVENTS = 100_000;
export const SIZE_GOAL_BYTES = 2 * 1024 * 1024;
export const RENDER_GOAL_MS = 2000;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

function decision(
  action: 'allow' | 'block',
  rule: string | null,
  severity: 'high' | null,
): Decision {
  const matches =
    rule === null
      ? []
      : [
          {
            rule_id: rule,
            pack_id: 'bench',
            kind: 'enforcement' as const,
            action: 'block' as const,
            mode: 'enforce' as const,
            severity,
            decisive: action === 'block',
          },
        ];
  return {
    action,
    rule_id: action === 'block' ? rule : null,
    reason: action === 'block' ? `Blocked by rule "${rule}": bench` : 'default',
    mode: action === 'block' ? 'enforce' : 'default',
    matches,
    findings: [],
    errors: [],
    generation: 1,
    eval_ns: 5000 + (rule === null ? 0 : 20_000),
  };
}

/** Writes a session of EVENTS events; returns where and how many were refused. */
function writeSession(dir: string): { path: string; blocked: number } {
  const path = join(dir, 'session.db');
  const w = new LedgerWriter(
    path,
    { session_id: 'bench-report', profile: 'balanced', celgate_version: 'bench', config: {} },
    { minFreeBytes: 0 },
  );
  const origin = { session_id: 'bench-report', process_name: 'agent' };
  const t0 = Date.now() - EVENTS * 10;
  let blocked = 0;
  for (let i = 0; i < EVENTS; i++) {
    const ts = { timestamp_ms: t0 + i * 10 };
    const block = i % 10 === 0;
    if (block) blocked++;
    const kind = i % 4;
    const e =
      kind === 0
        ? httpRequestEvent(
            origin,
            {
              method: 'GET',
              scheme: 'https',
              host: `h${i % 500}.example`,
              port: 443,
              path: `/p/${i % 50}`,
            },
            ts,
          )
        : kind === 1
          ? dnsRequestEvent(
              origin,
              { qname: `n${i % 700}.example`, qtype: 'A', qclass: 'IN', transport: 'udp' },
              ts,
            )
          : kind === 2
            ? mcpRequestEvent(
                origin,
                {
                  server_id: 'fs',
                  method: 'tools/call',
                  tool_name: `tool${i % 20}`,
                  request_id: String(i),
                  arguments: { path: `/tmp/${i % 30}` },
                },
                ts,
              )
            : processExecEvent(
                origin,
                {
                  executable: 'sh',
                  argv: ['sh', '-c', `echo ${i % 40}`],
                  command: `sh -c 'echo ${i % 40}'`,
                  cwd: '/',
                  command_class: 'shell',
                },
                ts,
              );
    const d = decision(
      block ? 'block' : 'allow',
      block ? `bench-rule-${i % 7}` : null,
      block && i % 20 === 0 ? 'high' : null,
    );
    w.decision(
      e,
      block && i % 20 === 0
        ? {
            ...d,
            findings: [
              {
                event_id: e.common.event_id,
                rule_id: d.rule_id!,
                pack_id: 'bench',
                severity: 'high',
                confidence: 1,
                title: `bench finding ${i % 5}`,
                tags: [],
                matched_fields: [],
              },
            ],
          }
        : d,
    );
  }
  w.close();
  return { path, blocked };
}

export async function run(): Promise<Artifact> {
  const assertions: AssertionResult[] = [];
  const results: Record<string, Summary> = {};
  if (CHROMIUM === undefined) {
    return writeArtifact({
      kind: 'micro',
      name: 'report',
      results,
      assertions,
      runs: 0,
      status: 'skipped',
      skip_reason: 'chromium is not installed (apt-get install chromium)',
      notes: {},
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'celgate-bench-report-'));
  const { path, blocked } = writeSession(dir);
  const t0 = performance.now();
  const db = openLedgerReadOnly(path);
  const data = reportData(db);
  db.close();
  const html = reportHtml(data);
  const buildMs = performance.now() - t0;
  const file = join(dir, 'report.html');
  writeFileSync(file, html);
  const bytes = Buffer.byteLength(html);
  assertions.push({
    name: `the report counts ${EVENTS} events, ${blocked} refused`,
    ok: data.totals.events === EVENTS && data.totals.block === blocked,
    detail: `${data.totals.events} / ${data.totals.block}`,
  });

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const renders: number[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      const start = performance.now();
      await page.goto(`file://${file}`, { waitUntil: 'load' });
      await page.waitForSelector('[data-count="events"]');
      const shown = Number((await page.textContent('[data-count="events"]'))!.replace(/,/g, ''));
      const ms = performance.now() - start;
      if (i === 0)
        assertions.push({
          name: 'Chromium shows the event count session.db holds, without a page error',
          ok: shown === EVENTS && errors.length === 0,
          detail: `${shown}; ${errors.join('; ')}`,
        });
      renders.push(ms);
      await page.close();
    }
  } finally {
    await browser.close();
  }
  results.report_bytes = summarize([bytes], 'bytes');
  results.report_build_ms = summarize([buildMs], 'ms');
  results.render_ms = summarize(renders, 'ms');
  assertions.push({
    name: `goal: file ≤ ${SIZE_GOAL_BYTES} bytes`,
    ok: bytes <= SIZE_GOAL_BYTES,
    detail: String(bytes),
  });
  assertions.push({
    name: `goal: rendered in ≤ ${RENDER_GOAL_MS} ms (median of 5)`,
    ok: results.render_ms.median <= RENDER_GOAL_MS,
    detail: results.render_ms.median.toFixed(0),
  });
  return writeArtifact({
    kind: 'micro',
    name: 'report',
    results,
    assertions,
    runs: renders.length,
    status: assertions.every((a) => a.ok) ? 'passed' : 'failed',
    notes: { events: EVENTS },
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const a = await run();
  for (const [name, s] of Object.entries(a.results))
    process.stdout.write(`${name.padEnd(20)} median ${s.median.toFixed(1)} ${s.unit}\n`);
  for (const x of a.assertions)
    process.stdout.write(
      `${x.ok ? 'ok  ' : 'FAIL'} ${x.name}${x.detail === undefined ? '' : ` (${x.detail})`}\n`,
    );
  process.exitCode = a.status === 'failed' ? 1 : 0;
}
