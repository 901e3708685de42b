/**
 * The gateway logger buffers lines and writes them every LOG_FLUSH_MS (synchronously to regular
 * files, asynchronously to pipes), and writes everything out on flush().
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, LOG_BUFFER_BYTES, LOG_FLUSH_MS } from '../../src/gateway/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'celgate-logger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('createLogger', () => {
  it('buffers lines for a regular file and writes them, in order, within the flush interval, when the buffer fills, and on flush()', async () => {
    const file = join(dir, 'a', 'gateway.jsonl');
    const log = createLogger({ level: 'info', file }, { pid: 1 }, { stdout: false });
    log.logger.info({ event_id: 'e1', decision: 'block' }, 'decision');
    await new Promise((r) => setTimeout(r, LOG_FLUSH_MS * 4));
    expect(lines(file).map((l) => l.event_id)).toEqual(['e1']);
    // Past the buffer size the lines are written as it fills, before any timer or flush().
    const n = Math.ceil(LOG_BUFFER_BYTES / 60) + 10;
    for (let i = 0; i < n; i++) log.logger.info({ event_id: `b${i}` }, 'decision');
    expect(lines(file).length).toBeGreaterThan(1);
    log.logger.info({ event_id: 'last' }, 'decision');
    await log.flush();
    const all = lines(file);
    expect(all).toHaveLength(n + 2);
    expect(all.map((l) => l.event_id)).toEqual([
      'e1',
      ...Array.from({ length: n }, (_, i) => `b${i}`),
      'last',
    ]);
    expect(all.at(-1)).toMatchObject({ event_id: 'last', msg: 'decision', level: 'info', pid: 1 });
  });

  it('writes every line to stdout when it is a pipe (asynchronous writes) by the time flush() resolves', () => {
    const script = `
      import { createLogger } from ${JSON.stringify(new URL('../../dist/src/gateway/logger.js', import.meta.url).pathname)};
      const log = createLogger({ level: 'info', file: null });
      for (let i = 0; i < 300; i++) log.logger.info({ n: i }, 'decision');
      await log.flush();
    `;
    // The built module (test/global-setup.ts builds dist/), in a child whose stdout is a pipe.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { n: number });
    expect(out.map((l) => l.n)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});

describe('the decision line (FanoutSink + infoLine)', () => {
  it('is the same JSON line logger.info would write for the same decision, for odd strings too', async () => {
    const { FanoutSink } = await import('../../src/gateway/sink.js');
    const { DecisionCounters } = await import('../../src/control/counters.js');
    const { allowDecision, blockDecision, dnsEvent, httpEvent } =
      await import('../store/fixtures/events.js');
    const noLedger = { decision() {}, net() {}, dns() {}, mcp() {}, exec() {} };
    const fast = join(dir, 'fast.jsonl');
    const slow = join(dir, 'slow.jsonl');
    const fastLog = createLogger({ level: 'info', file: fast }, { pid: 42 }, { stdout: false });
    const slowLog = createLogger({ level: 'info', file: slow }, { pid: 42 }, { stdout: false });
    const viaLine = new FanoutSink({
      counters: new DecisionCounters(),
      ledger: noLedger,
      logger: fastLog.logger,
      infoLine: fastLog.infoLine,
    });
    const viaPino = new FanoutSink({
      counters: new DecisionCounters(),
      ledger: noLedger,
      logger: slowLog.logger,
    });
    const odd = {
      ...blockDecision('rule "quoted" \\ ünïcode\n'),
      reason: 'a "reason"\twith\u2028controls\u0001',
    };
    const cases = [
      [httpEvent(), blockDecision()],
      [dnsEvent(), allowDecision()],
      [{ ...dnsEvent(), common: { ...dnsEvent().common, process_name: 'curl "x"' } }, odd],
      [httpEvent(), { ...allowDecision(), eval_ns: Number.NaN }],
    ] as const;
    for (const [e, d] of cases) {
      viaLine.decision(e as never, d as never);
      viaPino.decision(e as never, d as never);
    }
    await fastLog.flush();
    await slowLog.flush();
    const strip = (l: Record<string, unknown>) => ({
      ...l,
      time: typeof l.time === 'string' && !Number.isNaN(Date.parse(l.time)),
    });
    expect(lines(fast).map(strip)).toEqual(lines(slow).map(strip));
    expect(lines(fast)).toHaveLength(cases.length);
  });

  it('respects the level: nothing below warn is written at level warn', async () => {
    const file = join(dir, 'warn.jsonl');
    const log = createLogger({ level: 'warn', file }, {}, { stdout: false });
    log.infoLine('"a":1', 'decision');
    log.logger.warn({ b: 2 }, 'kept');
    await log.flush();
    expect(lines(file).map((l) => l.msg)).toEqual(['kept']);
  });
});
