/**
 * Human-readable text for IR results: issues, lowered rules, pack test results, and backtest / hunt
 * reports. Pure string building; the CLI decides where it goes.
 */
import { formatIssue, type Issue } from '../errors.js';
import type { LoadedPack } from './install.js';
import type { PackTestSummary } from './pack-tests.js';
import type { RunReport } from './run.js';
import type { IrRuleSource } from './types.js';

export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `  ${formatIssue(i)}`).join('\n');
}

export function formatLowered(packs: readonly LoadedPack[]): string {
  const out: string[] = [];
  for (const { pack, rules } of packs) {
    out.push(`# pack ${pack.id}@${pack.version}`);
    for (const r of rules) {
      out.push(
        `# ${r.rule.id} (${r.rule.event_type}, ${r.rule.severity}${r.rule.action === 'block' ? ', blocks' : ''})`,
      );
      if (r.rule.source !== undefined) out.push(`# ${sourceLine(r.rule.source)}`);
      out.push(r.condition, '');
    }
    // Correlations are not CEL: they run over the rules' findings (src/detection/correlate.ts).
    for (const c of pack.correlations) {
      const cond = `${c.condition.op} ${c.condition.count}`;
      out.push(
        `# correlation ${c.id} (${c.severity}): ${c.type}${c.field === null ? '' : ` of ${c.field}`} ${cond} within ${c.timespan} over [${c.rules.join(', ')}] by [${c.group_by.join(', ')}]`,
        '',
      );
    }
  }
  return out.join('\n');
}

export function formatPackTests(s: PackTestSummary): string {
  const lines = s.results.map(
    (r) =>
      `${r.passed ? 'PASS' : 'FAIL'}  ${r.rule_id}: ${r.name}${r.message === undefined ? '' : ` — ${r.message}`}`,
  );
  if (s.untested.length > 0) lines.push(`note: rules without test cases: ${s.untested.join(', ')}`);
  lines.push(`${s.passed} passed, ${s.failed} failed`);
  return lines.join('\n');
}

/** One line of a rule's provenance: `sigma 1234… by A. Author (2023-01-31, modified …); refs: …`. */
export function sourceLine(s: IrRuleSource): string {
  const parts = [`${s.kind ?? 'source'}${s.id === undefined ? '' : ` ${s.id}`}`];
  if (s.author !== undefined) parts.push(`by ${s.author}`);
  const dates = [s.date, s.modified === undefined ? undefined : `modified ${s.modified}`].filter(
    (x) => x !== undefined,
  );
  let line = parts.join(' ') + (dates.length > 0 ? ` (${dates.join(', ')})` : '');
  if (s.references !== undefined) line += `; refs: ${s.references.join(', ')}`;
  if (s.falsepositives !== undefined) line += `; false positives: ${s.falsepositives.join('; ')}`;
  return line;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatRunReport(r: RunReport): string {
  const packs = r.packs
    .map((p) => `${p.id}@${p.version} (${p.rules.length} rule${p.rules.length === 1 ? '' : 's'})`)
    .join(', ');
  const lines = [
    `${r.kind}: ${packs} over ${r.events_scanned} events`,
    `  matches: ${r.total_matches}   unique evidence: ${r.unique_evidence}   rows: ${r.rows.length}${r.truncated ? ' (truncated)' : ''}`,
  ];
  for (const [rule, t] of Object.entries(r.by_rule)) {
    lines.push(`  ${rule}: ${t.matches} matches, ${t.unique_evidence} unique`);
    const src = r.sources[rule];
    if (src !== undefined) lines.push(`    ${sourceLine(src)}`);
  }
  if (r.errors.count > 0) {
    lines.push(`  evaluation errors: ${r.errors.count}`);
    for (const e of r.errors.samples) lines.push(`    ${e.rule_id} on ${e.event_id}: ${e.message}`);
  }
  if (r.expectations !== null) {
    const x = r.expectations;
    lines.push(`  expectations: ${x.checked} checked, ${x.passed} passed, ${x.failed} failed`);
    for (const m of x.mismatches)
      lines.push(
        `    ${m.where ?? m.event_id}: expected [${m.expected.join(', ')}], got [${m.actual.join(', ')}]`,
      );
  }
  const c = r.correlations;
  if (c.fired > 0 || c.evictions > 0) {
    lines.push(
      `  correlations: ${c.fired} fired, ${c.open_groups} groups open, ${c.evictions} evicted at the group limit, ${c.expired} expired`,
    );
    for (const f of c.findings)
      lines.push(
        `    ${f.rule_id} on ${f.event_id}: ${f.type} ${f.count} ${JSON.stringify(f.group)} events [${f.event_ids.join(', ')}]`,
      );
    if (c.truncated) lines.push('    … (more correlation findings than rows)');
  }
  if (r.rows.length > 0) {
    const w = Math.max(4, ...r.rows.map((x) => x.rule_id.length));
    lines.push(
      '',
      `${pad('RULE', w)}  SEVERITY       COUNT  EVIDENCE          FIRST EVENT  SUMMARY`,
    );
    for (const x of r.rows) {
      lines.push(
        `${pad(x.rule_id, w)}  ${pad(x.severity, 13)}  ${pad(String(x.count), 5)}  ${x.signature.slice(0, 16)}  ${pad(x.first_event_id, 11)}  ${x.summary}`,
      );
    }
  }
  lines.push('', r.ok ? 'ok' : 'NOT OK');
  return lines.join('\n');
}

/** One progress line for stderr: a bar when the total is known, a counter otherwise. */
export function progressLine(done: number, total: number | undefined, what: string): string {
  if (total === undefined || total <= 0) return `\r${done} ${what}`;
  const frac = Math.min(1, done / total);
  const width = 30;
  const full = Math.round(frac * width);
  return `\r[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${Math.round(frac * 100)}% ${what}`;
}
