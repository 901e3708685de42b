/**
 * Process lane: N blocked shell execs. Operation 1 goes through the real `celgate exec` CLI (it must
 * exit 126 and name the rule); the rest through `POST /v1/exec` on a kept-alive admin connection,
 * timed end to end. Each command would create a marker file in the guest if it ever ran, so
 * "nothing reached the guest" is checked on the filesystem, not trusted.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MAIN_JS } from './guest-netns.js';
import type { LaneContext, LaneDrive, LaneSpec } from './guest-lanes.js';

function cli(args: string[]): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN_JS, ...args], { timeout: 30_000 }, (err, _stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1;
      resolve({ code, stderr, ms: performance.now() - t0 });
    });
  });
}

export const processLane: LaneSpec = {
  name: 'process',
  table: 'exec_events',
  condition: (tag, broken) =>
    `process.activity.command_class == "shell" && process.activity.command.contains("${broken ? `${tag}-never` : tag}")`,
  warmCondition: (warmTag) => `process.activity.command.contains("${warmTag}")`,
  async drive(ctx: LaneContext): Promise<LaneDrive> {
    const marker = (i: number) => join(ctx.workDir, `ran-${ctx.tag}-${i}`);
    const argv = (i: number) => ['sh', '-c', `echo ${ctx.tag} > ${marker(i)}`];
    for (let i = 0; i < ctx.warmup; i++)
      await ctx.gw.api('POST', '/v1/exec', { argv: ['sh', '-c', `echo ${ctx.warmTag}`], cwd: '/' });
    const checks = [];
    const first = await cli(['exec', '--socket', ctx.gw.controlSocket, '--', ...argv(0)]);
    checks.push({
      name: 'celgate exec CLI exits 126 and names the rule',
      ok: first.code === 126 && first.stderr.includes(ctx.ruleId),
      detail: `exit ${first.code}: ${first.stderr.trim().slice(0, 200)}`,
    });
    const api: number[] = [];
    let refused = 0;
    const bad: string[] = [];
    for (let i = 1; i < ctx.runs; i++) {
      const t0 = performance.now();
      const r = await ctx.gw.api('POST', '/v1/exec', { argv: argv(i), cwd: '/' });
      api.push(performance.now() - t0);
      if (
        r.status === 403 &&
        r.json?.refused === true &&
        r.json?.rule_id === ctx.ruleId &&
        r.json?.reached_guest === false
      )
        refused++;
      else bad.push(`${r.status} ${r.text.slice(0, 200)}`);
    }
    checks.push({
      name: `POST /v1/exec refused ${ctx.runs - 1} commands with 403 and the rule id`,
      ok: refused === ctx.runs - 1,
      detail: bad.slice(0, 2).join(' | ') || `${refused} refused`,
    });
    const ran = Array.from({ length: ctx.runs }, (_, i) => i).filter((i) => existsSync(marker(i)));
    checks.push({
      name: 'no blocked command reached the guest (no marker files)',
      ok: ran.length === 0,
      detail: `${ran.length} ran`,
    });
    return {
      results: { exec_blocked_api_ms: api, exec_blocked_cli_ms: [first.ms] },
      checks,
      events: ctx.runs,
    };
  },
};
