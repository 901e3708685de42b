/**
 * `celgate report`: the session report (docs/report.md) as one self-contained HTML file, from a
 * session.db (a finished session, or a running one: the ledger is read, never written).
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { reportHtml } from '../control/report-page.js';
import { CelgateError } from '../errors.js';
import { reportData } from '../store/report-data.js';
import { openLedgerReadOnly } from '../store/schema.js';
import { loadConfig } from '../gateway/config.js';

/** The session.db to report on: --db, else --session in the data dir, else the newest session there. */
export function findSessionDb(o: {
  db?: string;
  session?: string;
  dataDir?: string;
  config?: string;
}): string {
  if (o.db !== undefined) {
    if (!existsSync(o.db)) throw new CelgateError('E_CONFIG', `no session database at ${o.db}`);
    return resolve(o.db);
  }
  const dataDir = o.dataDir ?? (o.config !== undefined ? loadConfig(o.config).data_dir : 'data');
  const sessions = join(dataDir, 'sessions');
  if (o.session !== undefined) {
    const db = join(sessions, o.session, 'session.db');
    if (!existsSync(db))
      throw new CelgateError('E_CONFIG', `no session "${o.session}" in ${sessions}`);
    return db;
  }
  const all = existsSync(sessions)
    ? readdirSync(sessions).filter((s) => existsSync(join(sessions, s, 'session.db')))
    : [];
  if (all.length === 0)
    throw new CelgateError('E_CONFIG', `no sessions in ${sessions} (give --db or --data-dir)`);
  all.sort(
    (a, b) =>
      statSync(join(sessions, a, 'session.db')).mtimeMs -
      statSync(join(sessions, b, 'session.db')).mtimeMs,
  );
  return join(sessions, all.at(-1)!, 'session.db');
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description(
      'Write the session report: one self-contained HTML page of what the agent reached, what was stopped and why (docs/report.md).',
    )
    .option('--db <path>', 'the session.db to report on')
    .option('--session <id>', 'a session in the data directory (default: the newest)')
    .option('--data-dir <dir>', 'the data directory (default: from --config, else ./data)')
    .option('-c, --config <file>', 'the gateway configuration file (for its data_dir)')
    .option('-o, --output <file>', 'where to write the page (default: report-<session>.html)')
    .action(
      (o: {
        db?: string;
        session?: string;
        dataDir?: string;
        config?: string;
        output?: string;
      }) => {
        try {
          const path = findSessionDb(o);
          const db = openLedgerReadOnly(path);
          let data;
          try {
            data = reportData(db);
          } finally {
            db.close();
          }
          const out = o.output ?? `report-${data.session.session_id || 'session'}.html`;
          const html = reportHtml(data);
          writeFileSync(out, html);
          process.stdout.write(
            `${out}: ${data.totals.events} events (${data.totals.block} blocked, ${data.totals.error} errors) from ${path}, ${Math.round(html.length / 1024)} KiB\n`,
          );
        } catch (err) {
          process.stderr.write(`celgate report: ${(err as Error).message}\n`);
          process.exitCode = 1;
        }
      },
    );
}
