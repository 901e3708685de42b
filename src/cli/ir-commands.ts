/**
 * `celgate ir …`: validate, lower, test, backtest, hunt and import-sigma for Detection IR packs, plus
 * the control-API routes `POST /v1/ir/backtest` and `POST /v1/ir/hunt`. Composition only: reads
 * files and session.db and hands events to src/detection, which does all the work.
 */
import {
  createReadStream,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { loadPackTexts, type LoadedPack } from '../detection/install.js';
import { runPackTests } from '../detection/pack-tests.js';
import {
  formatIssues,
  formatLowered,
  formatPackTests,
  formatRunReport,
  progressLine,
} from '../detection/report.js';
import { parseCorpusLine, runDetections, type CorpusItem } from '../detection/run.js';
import { sigmaPack, type ImportedRule, type SigmaImportIssue } from '../detection/sigma/import.js';
import { parseMapping, type SigmaMapping } from '../detection/sigma/mapping.js';
import { importSigmaCollection } from '../detection/sigma/correlation.js';
import { type Issue } from '../errors.js';
import { countRows, openLedgerReadOnly, readEvents } from '../store/index.js';
import { SESSION_ID_PATTERN } from '../gateway/config.js';
import { eventFromJson } from '../events/build.js';
import { fleetEventStream, withNats, type NatsFlags } from './fleet-commands.js';

class CliFailure extends Error {
  constructor(
    message: string,
    readonly issues: readonly Issue[] = [],
  ) {
    super(message);
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliFailure(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** Pack arguments: files, or directories whose top-level *.yaml / *.yml / *.json files are packs. */
function packFiles(paths: readonly string[]): string[] {
  return paths.flatMap((p) => {
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      return [p]; // reported by readText
    }
    return dir
      ? readdirSync(p)
          .sort()
          .filter((n) => /\.(ya?ml|json)$/.test(n))
          .map((n) => join(p, n))
          .filter((f) => statSync(f).isFile())
      : [p];
  });
}

function loadPacks(args: readonly string[]): LoadedPack[] {
  const paths = packFiles(args);
  if (paths.length === 0) throw new CliFailure(`no pack files in ${args.join(', ')}`);
  const r = loadPackTexts(paths.map((file) => ({ text: readText(file), file })));
  if (!r.ok)
    throw new CliFailure(
      `${r.issues.length} problem${r.issues.length === 1 ? '' : 's'} in ${paths.join(', ')}`,
      r.issues,
    );
  return r.value;
}

/** Runs a command body; prints failures (with issues) on stderr and sets the exit code. */
function run(
  name: string,
  json: boolean | undefined,
  body: () => Promise<boolean> | boolean,
): () => Promise<void> {
  return async () => {
    try {
      const ok = await body();
      if (!ok) process.exitCode = 1;
    } catch (err) {
      process.exitCode = 1;
      if (err instanceof CliFailure) {
        if (json === true)
          process.stdout.write(
            `${JSON.stringify({ ok: false, error: err.message, issues: err.issues }, null, 2)}\n`,
          );
        else
          process.stderr.write(
            `celgate ir ${name}: ${err.message}${err.issues.length > 0 ? `\n${formatIssues(err.issues)}` : ''}\n`,
          );
      } else process.stderr.write(`celgate ir ${name}: ${(err as Error).stack ?? String(err)}\n`);
    }
  };
}

function out(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json === true ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

function progress(
  enabled: boolean,
  what: string,
): { tick(done: number, total?: number): void; end(): void } {
  const on = enabled && process.stderr.isTTY === true;
  let last = 0;
  return {
    tick(done, total) {
      const now = Date.now();
      if (!on || now - last < 100) return;
      last = now;
      process.stderr.write(progressLine(done, total, what));
    },
    end() {
      if (on) process.stderr.write('\n');
    },
  };
}

/** Reads a JSONL corpus lazily; bad lines become issues (the run is then reported as failed). */
async function* corpus(
  path: string,
  issues: Issue[],
  onBytes: (read: number, size: number) => void,
): AsyncGenerator<CorpusItem> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new CliFailure(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const stream = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    const r = parseCorpusLine(line, n, path);
    if (!r.ok) issues.push(r.issue);
    else if (r.item !== null) yield r.item;
    onBytes(stream.bytesRead, size);
  }
}

/** `--session` as a session.db path, a session directory, or a session id under the data dir. */
export function resolveSessionDb(session: string, dataDir: string): string {
  if (existsSync(session)) {
    const st = statSync(session);
    const db = st.isDirectory() ? join(session, 'session.db') : session;
    if (existsSync(db)) return resolve(db);
  }
  if (!SESSION_ID_PATTERN.test(session))
    throw new CliFailure(`no session.db at "${session}", and it is not a session id`);
  const db = join(dataDir, 'sessions', session, 'session.db');
  if (!existsSync(db)) throw new CliFailure(`no session "${session}" (looked for ${db})`);
  return resolve(db);
}

interface RunOpts {
  json?: boolean;
  maxRows: string;
  progress: boolean;
}

function rowsOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new CliFailure(`--max-rows must be a non-negative integer, got "${v}"`);
  return n;
}

export function registerIrCommands(program: Command): void {
  const ir = program
    .command('ir')
    .description('Detection IR packs: validate, lower to CEL, test, backtest, hunt, import Sigma');

  ir.command('validate')
    .description('validate packs (schema, fields, regexes, ids) and compile their lowered CEL')
    .argument('<packs...>', 'pack files (YAML or JSON)')
    .option('--json', 'JSON output')
    .action((paths: string[], o: { json?: boolean }) =>
      run('validate', o.json, () => {
        const packs = loadPacks(paths);
        const summary = packs.map((p) => ({
          file: p.pack.file,
          id: p.pack.id,
          version: p.pack.version,
          rules: p.rules.length,
        }));
        out(
          o.json,
          { ok: true, packs: summary },
          summary
            .map(
              (s) =>
                `ok  ${s.file}: ${s.id}@${s.version}, ${s.rules} rule${s.rules === 1 ? '' : 's'}`,
            )
            .join('\n'),
        );
        return true;
      })(),
    );

  ir.command('lower')
    .description('print the CEL each rule lowers to')
    .argument('<packs...>', 'pack files')
    .option('--json', 'JSON output')
    .action((paths: string[], o: { json?: boolean }) =>
      run('lower', o.json, () => {
        const packs = loadPacks(paths);
        const json = packs.flatMap((p) =>
          p.rules.map((r) => ({
            pack_id: p.pack.id,
            rule_id: r.rule.id,
            event_type: r.rule.event_type,
            condition: r.condition,
            matched_fields: r.matched_fields,
          })),
        );
        out(o.json, json, formatLowered(packs));
        return true;
      })(),
    );

  ir.command('test')
    .description("run the packs' own test cases through the policy engine")
    .argument('<packs...>', 'pack files')
    .option('--json', 'JSON output')
    .action((paths: string[], o: { json?: boolean }) =>
      run('test', o.json, () => {
        const s = runPackTests(loadPacks(paths));
        out(o.json, s, formatPackTests(s));
        return s.failed === 0;
      })(),
    );

  ir.command('backtest')
    .description(
      'run packs over recorded events (JSONL: an event, or {"event", "expect": [rule ids]} per line)',
    )
    .argument('<packs...>', 'pack files')
    .requiredOption('--events <jsonl>', 'event corpus')
    .option('--max-rows <n>', 'evidence rows to keep', '100')
    .option('--json', 'JSON output')
    .option('--no-progress', 'no progress bar on stderr')
    .action((paths: string[], o: RunOpts & { events: string }) =>
      run('backtest', o.json, async () => {
        const packs = loadPacks(paths);
        const issues: Issue[] = [];
        const bar = progress(o.progress, 'of the corpus');
        const report = await runDetections(
          packs,
          corpus(o.events, issues, (read, size) => bar.tick(read, size)),
          'backtest',
          { maxRows: rowsOption(o.maxRows) },
        );
        bar.end();
        const ok = report.ok && issues.length === 0;
        out(
          o.json,
          { ...report, ok, corpus_issues: issues },
          `${formatRunReport(report)}${issues.length > 0 ? `\ncorpus problems (${issues.length}):\n${formatIssues(issues.slice(0, 50))}` : ''}`,
        );
        return ok;
      })(),
    );

  withNats(
    ir
      .command('hunt')
      .description(
        "run packs over a session's session.db, or (--fleet) over the fleet's event stream",
      )
      .argument('<packs...>', 'pack files')
      .option(
        '--session <id|path>',
        'session id (under --data-dir), session directory, or session.db path',
      )
      .option('--data-dir <dir>', 'data directory holding sessions/', 'data')
      .option(
        '--fleet',
        "hunt over the fleet's event stream instead (docs/fleet.md); with --nats, --gateway, --since",
      )
      .option('--gateway <id>', 'with --fleet: only this gateway')
      .option('--since <when>', 'with --fleet: from a duration ago (15m, 2h) or an ISO time')
      .option('--max-rows <n>', 'evidence rows to keep', '100')
      .option('--json', 'JSON output')
      .option('--no-progress', 'no progress bar on stderr'),
  ).action(
    (
      paths: string[],
      o: RunOpts &
        NatsFlags & {
          session?: string;
          dataDir: string;
          fleet?: boolean;
          gateway?: string;
          since?: string;
        },
    ) =>
      run('hunt', o.json, async () => {
        const packs = loadPacks(paths);
        if (o.fleet === true) {
          if (o.session !== undefined)
            throw new CliFailure(
              '--fleet reads the event stream; filter it with --gateway and --since, not --session',
            );
          let report: Awaited<ReturnType<typeof runDetections>> | null = null;
          const skipped: Issue[] = [];
          const bar = progress(o.progress, 'of the stream');
          let n = 0;
          await fleetEventStream(o, async (messages) => {
            async function* items(): AsyncGenerator<CorpusItem> {
              for await (const m of messages) {
                if (m.data.kind !== 'decision') continue;
                const ev = eventFromJson(m.data.event, {
                  session_id: String(m.data.session_id ?? ''),
                });
                if (!ev.ok) {
                  skipped.push({
                    path: `stream seq ${m.seq}`,
                    message: ev.issues.map((i) => i.message).join('; '),
                  });
                  continue;
                }
                bar.tick(++n, undefined);
                yield { event: ev.value, where: `${String(m.data.gateway_id)}/${m.seq}` };
              }
            }
            report = await runDetections(packs, items(), 'hunt', {
              maxRows: rowsOption(o.maxRows),
            });
          });
          bar.end();
          const r = report!;
          out(
            o.json,
            { ...r, source: 'fleet', skipped_messages: skipped },
            `${formatRunReport(r)}\nsource: the fleet's event stream${skipped.length > 0 ? `\nskipped messages: ${skipped.length}` : ''}`,
          );
          return r.ok;
        }
        if (o.session === undefined)
          throw new CliFailure(
            'give --session <id|path>, or --fleet to hunt over the event stream',
          );
        const dbPath = resolveSessionDb(o.session, resolve(o.dataDir));
        let total: number | undefined;
        try {
          const db = openLedgerReadOnly(dbPath);
          total = countRows(db, 'security_events');
          db.close();
        } catch (err) {
          throw new CliFailure(`cannot open ${dbPath}: ${(err as Error).message}`);
        }
        const skipped: Issue[] = [];
        const bar = progress(o.progress, 'of the session');
        let n = 0;
        async function* items(): AsyncGenerator<CorpusItem> {
          for (const event of readEvents(dbPath, {
            onSkip: (seq, message) =>
              skipped.push({ path: `security_events[seq=${seq}]`, message }),
          })) {
            bar.tick(++n, total);
            yield { event };
          }
        }
        const report = await runDetections(packs, items(), 'hunt', {
          maxRows: rowsOption(o.maxRows),
        });
        bar.end();
        out(
          o.json,
          { ...report, session_db: dbPath, skipped_rows: skipped },
          `${formatRunReport(report)}\nsession: ${dbPath}${skipped.length > 0 ? `\nskipped rows: ${skipped.length}` : ''}`,
        );
        return report.ok;
      })(),
  );

  ir.command('import-sigma')
    .description(
      'convert Sigma rules to one IR pack through a field mapping (refuses unsupported constructs by name)',
    )
    .argument('<rules...>', 'Sigma rule files')
    .requiredOption('--mapping <files...>', 'mapping files (detection-ir/mappings/*.yaml)')
    .option('--pack-id <id>', 'id of the generated pack', 'sigma-import')
    .option('-o, --output <file>', 'write the pack here instead of stdout')
    .option('--partial', 'emit the pack of the rules that converted even when others were refused')
    .option('--json', 'JSON output: {pack, imported, refused}')
    .action(
      (
        files: string[],
        o: {
          mapping: string[];
          packId: string;
          output?: string;
          partial?: boolean;
          json?: boolean;
        },
      ) =>
        run('import-sigma', o.json, () => {
          const mappings: SigmaMapping[] = [];
          const mappingIssues: Issue[] = [];
          for (const f of o.mapping) {
            const m = parseMapping(readText(f), f);
            if (m.ok) mappings.push(m.value);
            else mappingIssues.push(...m.issues);
          }
          if (mappingIssues.length > 0) throw new CliFailure('invalid mapping', mappingIssues);
          const imported: ImportedRule[] = [];
          const correlations: Record<string, unknown>[] = [];
          const refused: SigmaImportIssue[] = [];
          for (const f of files) {
            // A file may hold several documents: rules and correlation rules over them.
            const col = importSigmaCollection(readText(f), mappings, f);
            refused.push(...col.issues);
            const ok = new Set<unknown>();
            for (const r of col.rules) {
              // Each converted rule must also validate and compile on its own (e.g. a regex the
              // policy compiler refuses); a rule that does not is refused, not the whole batch.
              const alone = sigmaPack([r], { id: o.packId });
              const compiled = alone.ok
                ? loadPackTexts([{ text: alone.value.yaml, file: f }])
                : alone;
              if (compiled.ok) {
                imported.push(r);
                ok.add(r.rule.id);
              } else
                refused.push(
                  ...compiled.issues.map((i) => ({
                    ...i,
                    file: f,
                    code: 'E_IR_INVALID' as const,
                    message: `converted rule is not valid: ${i.message}`,
                  })),
                );
            }
            for (const c of col.correlations) {
              const missing = (c.rules as string[]).filter(
                (id) => !ok.has(id) && !col.correlations.some((x) => x.id === id),
              );
              if (missing.length === 0) correlations.push(c);
              else
                refused.push({
                  file: f,
                  path: 'correlation',
                  code: 'E_SIGMA_UNSUPPORTED',
                  message: `correlation "${String(c.title)}" references rules that were refused: ${missing.join(', ')}`,
                });
            }
          }
          let pack: { yaml: string } | undefined;
          if (imported.length > 0 && (refused.length === 0 || o.partial === true)) {
            const p = sigmaPack(imported, { id: o.packId }, correlations);
            if (!p.ok) throw new CliFailure('the converted pack does not validate', p.issues);
            pack = p.value;
            const loaded = loadPackTexts([{ text: p.value.yaml, file: '<imported>' }]);
            if (!loaded.ok)
              throw new CliFailure('the converted pack does not compile', loaded.issues);
            if (o.output !== undefined) writeFileSync(o.output, p.value.yaml);
          }
          if (o.json === true)
            out(
              true,
              {
                ok: refused.length === 0,
                pack: pack?.yaml ?? null,
                imported: imported.length,
                refused,
              },
              '',
            );
          else {
            if (pack !== undefined && o.output === undefined) process.stdout.write(pack.yaml);
            for (const r of refused)
              process.stderr.write(
                `refused: ${r.file ?? ''}${r.line === undefined ? '' : `:${r.line}`}: ${r.code}: ${r.message}\n`,
              );
            process.stderr.write(
              `${imported.length} converted, ${refused.length} refused${pack !== undefined && o.output !== undefined ? `; wrote ${o.output}` : ''}\n`,
            );
          }
          return refused.length === 0;
        })(),
    );
}
