/**
 * Offline policy commands: `celgate rules lint`, `celgate rules test`, `celgate evaluate`. They read
 * packs and fixtures from disk and never talk to a running gateway.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatIssue, type Issue } from '../errors.js';
import { eventFromJson } from '../events/build.js';
import type { Decision } from '../events/decision.js';
import { parseCaseFile, runCases } from '../policy/pack-tests.js';
import { loadPackFiles, packFilesIn } from '../policy/packs.js';
import { PolicyEngine } from '../policy/engine.js';
import { conditionAdvice } from '../policy/advice.js';
import { RuleRegistry } from '../policy/registry.js';

function fail(issues: readonly Issue[]): never {
  for (const i of issues) process.stderr.write(`${formatIssue(i)}\n`);
  process.stderr.write(`${issues.length} problem${issues.length === 1 ? '' : 's'}.\n`);
  process.exit(1);
}

/** `foo.yaml` → `foo.test.yaml` next to it; a directory → every *.test.yaml in it. */
function caseFilesFor(path: string): string[] {
  if (statSync(path).isDirectory()) {
    return packFilesIn(path)
      .map((f) => f.replace(/\.ya?ml$/, '.test.yaml'))
      .filter((f) => existsSync(f));
  }
  if (/\.test\.ya?ml$/.test(path)) return [path];
  const sibling = path.replace(/\.ya?ml$/, '.test.yaml');
  return existsSync(sibling) ? [sibling] : [];
}

export function describeDecision(d: Decision): string {
  const lines = [
    `decision: ${d.action}${d.rule_id === null ? '' : ` (rule ${d.rule_id})`}`,
    `reason:   ${d.reason}`,
    `mode:     ${d.mode}, plan generation ${d.generation}, ${(d.eval_ns / 1000).toFixed(1)} µs`,
  ];
  if (d.matches.length === 0) lines.push('matches:  none');
  else {
    lines.push('matches:');
    for (const m of d.matches) {
      lines.push(
        `  ${m.decisive ? '*' : '-'} ${m.rule_id} [${m.pack_id}] ${m.action} ${m.mode}${m.severity === null ? '' : ` severity=${m.severity}`}`,
      );
    }
  }
  for (const f of d.findings)
    lines.push(
      `finding:  ${f.rule_id} ${f.severity} "${f.title}" fields=${f.matched_fields.join(',')}`,
    );
  for (const e of d.errors) lines.push(`error:    ${e.rule_id}: ${e.code} ${e.message}`);
  return lines.join('\n');
}

export function registerPolicyCommands(program: Command): void {
  const rules =
    program.commands.find((c) => c.name() === 'rules') ??
    program.command('rules').description('Check, test and manage rule packs.');

  rules
    .command('lint <paths...>')
    .description(
      'Validate rule packs (files or directories): schema, ids, priorities, conditions. Exit 1 on any problem.',
    )
    .action((paths: string[]) => {
      const set = loadPackFiles(paths);
      if (!set.ok) fail(set.issues);
      for (const p of set.value.packs) {
        process.stdout.write(
          `ok  ${p.file}: pack ${p.pack.id}@${p.pack.version}, ${p.pack.rules.length} rules, default ${p.pack.default_action}\n`,
        );
        for (const r of p.pack.rules) {
          for (const a of conditionAdvice(r.condition)) {
            process.stdout.write(
              `warning: ${p.file}: rule ${r.id}: ${a.message} (condition line ${a.line}, column ${a.column})\n`,
            );
          }
        }
      }
    });

  rules
    .command('test <paths...>')
    .description(
      "Run the packs' own cases (<pack>.test.yaml next to each pack). Exit 1 on any failure.",
    )
    .option('--json', 'print results as JSON')
    .action((paths: string[], opts: { json?: boolean }) => {
      const caseFiles = [...new Set(paths.flatMap((p) => caseFilesFor(resolve(p))))];
      if (caseFiles.length === 0)
        fail([{ path: '', message: `no *.test.yaml case files next to ${paths.join(', ')}` }]);
      let failed = 0;
      let total = 0;
      const report: unknown[] = [];
      for (const file of caseFiles) {
        const parsed = parseCaseFile(readFileSync(file, 'utf8'), file);
        if (!parsed.ok) fail(parsed.issues);
        const packs =
          parsed.value.packs.length > 0
            ? parsed.value.packs.map((p) => join(dirname(file), p))
            : [file.replace(/\.test\.ya?ml$/, '.yaml')];
        const set = loadPackFiles(packs);
        if (!set.ok) fail(set.issues);
        for (const r of runCases(set.value, parsed.value.cases)) {
          total++;
          if (!r.ok) failed++;
          report.push({
            file,
            name: r.name,
            ok: r.ok,
            action: r.decision.action,
            rule: r.decision.rule_id,
            message: r.message,
          });
          if (!opts.json)
            process.stdout.write(
              `${r.ok ? 'pass' : 'FAIL'}  ${basename(file)}: ${r.name}${r.ok ? '' : `\n      ${r.message}`}\n`,
            );
        }
      }
      if (opts.json)
        process.stdout.write(`${JSON.stringify({ total, failed, results: report }, null, 2)}\n`);
      else process.stdout.write(`${total - failed} passed, ${failed} failed\n`);
      process.exit(failed > 0 ? 1 : 0);
    });

  program
    .command('evaluate')
    .description(
      'Judge one event (a JSON fixture) against rule packs and print the decision and every match.',
    )
    .requiredOption('--event <file>', 'event JSON file (see test/fixtures/events/)')
    .option('--rules <paths...>', 'rule packs (files or directories)', ['rules/balanced.yaml'])
    .option('--json', 'print the decision as JSON')
    .action((opts: { event: string; rules: string[]; json?: boolean }) => {
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(opts.event, 'utf8'));
      } catch (e) {
        fail([
          { file: opts.event, path: '', message: `cannot read event: ${(e as Error).message}` },
        ]);
      }
      const event = eventFromJson(raw);
      if (!event.ok) fail(event.issues.map((i) => ({ ...i, file: opts.event })));
      const set = loadPackFiles(opts.rules);
      if (!set.ok) fail(set.issues);
      const registry = new RuleRegistry({ defaultAction: set.value.defaultAction });
      const installed = registry.replaceAll(
        set.value.rules,
        set.value.defaultAction,
        set.value.compiled,
      );
      if (!installed.ok) fail(installed.issues);
      const decision = new PolicyEngine(registry).decide(event.value);
      process.stdout.write(
        opts.json ? `${JSON.stringify(decision, null, 2)}\n` : `${describeDecision(decision)}\n`,
      );
    });
}
