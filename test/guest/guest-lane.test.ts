/**
 * CI's short version of `npm run bench:security`: one guest lane (process), two operations, against
 * the real built gateway and a real namespace guest — and the same lane with a rule that cannot
 * match, which must fail its assertions instead of reporting a time.
 */
import { describe, expect, it } from 'vitest';
import { processLane } from '../../bench/guest-lane-process.js';
import { runLane } from '../../bench/guest-lanes.js';
import { netnsAvailability } from '../support/netns.js';

const avail = netnsAvailability();

describe.skipIf(!avail.ok)(
  `guest-originated enforcement lane${avail.ok ? '' : ` (skipped: ${avail.reason})`}`,
  () => {
    it('blocks two guest execs, and counter, session.db and log lines all name the rule', async () => {
      const a = await runLane(processLane, { runs: 2, broken: false, write: false });
      const failed = a.assertions.filter((x) => !x.ok); // shown in full when this fails
      expect(failed).toEqual([]);
      expect(a.status).toBe('passed');
      expect(a.assertions.map((x) => x.name)).toEqual(
        expect.arrayContaining([
          'rule counter moved by 2',
          'session.db exec_events has 2 rows with the rule id',
          'gateway log has 2 decision lines naming the rule',
        ]),
      );
      expect(a.results.exec_blocked_api_ms?.n).toBe(1);
    }, 120_000);

    it('fails its assertions and records no time when the rule cannot match', async () => {
      const a = await runLane(processLane, { runs: 2, broken: true, write: false });
      expect(a.status).toBe('failed');
      expect(a.results).toEqual({});
      // It failed because the rule did not match — not because the lane could not run.
      const detail = JSON.stringify(a.assertions);
      expect(
        a.assertions.find((x) => x.name === 'rule installed through the admin API')?.ok,
        detail,
      ).toBe(true);
      expect(
        a.assertions.find((x) => x.name.startsWith('celgate exec CLI exits 126'))?.ok,
        detail,
      ).toBe(false);
      expect(a.assertions.find((x) => x.name.startsWith('rule counter moved by'))?.ok, detail).toBe(
        false,
      );
    }, 120_000);
  },
);
