/**
 * `celgate events`, `celgate stats`, `celgate rules install <file>` and `celgate rules delete <id>`:
 * thin clients of a running gateway's admin API over its Unix socket. They print JSON (or a short
 * table) and exit non-zero with the API's error. No policy, no database access here.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CelgateError, formatIssue } from '../errors.js';
import { parsePack } from '../policy/packs.js';
import {
  action,
  apiError,
  callControl,
  socketPath,
  withSocket,
  type SocketFlags,
} from './admin-client.js';

async function run(flags: SocketFlags, method: string, path: string, body?: unknown): Promise<any> {
  const res = await callControl(socketPath(flags), method, path, body);
  if (res.status >= 400) throw apiError(res);
  return res.json;
}

/** Reads a rule file: one rule, a list of rules, or a pack with `rules:` (YAML or JSON). */
export function readRulesFile(file: string): Record<string, unknown>[] {
  let doc: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new CelgateError('E_CONFIG', `${file}: ${(err as Error).message}`, { cause: err });
  }
  const list = Array.isArray(doc)
    ? doc
    : doc !== null && typeof doc === 'object' && Array.isArray((doc as any).rules)
      ? (doc as any).rules
      : [doc];
  for (const [i, r] of list.entries()) {
    if (r === null || typeof r !== 'object' || typeof (r as any).id !== 'string')
      throw new CelgateError('E_CONFIG', `${file}: rule ${i} has no "id"`);
  }
  return list as Record<string, unknown>[];
}

export function registerGatewayCommands(program: Command): void {
  withSocket(
    program.command('events').description('Recent decisions of a running gateway (newest first).'),
  )
    .option('-n, --limit <n>', 'how many', '20')
    .option('--rule <id>', 'only events this rule matched')
    .option('--type <event_type>', 'only this event type, e.g. dns.request')
    .option('--decision <verdict>', 'only allow, block or error')
    .option('--json', 'print JSON')
    .action(
      action(
        async (
          flags: SocketFlags & {
            limit: string;
            rule?: string;
            type?: string;
            decision?: string;
            json?: boolean;
          },
        ) => {
          const q = new URLSearchParams({ limit: flags.limit });
          if (flags.rule !== undefined) q.set('rule', flags.rule);
          if (flags.type !== undefined) q.set('event_type', flags.type);
          if (flags.decision !== undefined) q.set('decision', flags.decision);
          const out = await run(flags, 'GET', `/v1/events?${q}`);
          if (flags.json === true) {
            process.stdout.write(`${JSON.stringify(out.events, null, 2)}\n`);
            return;
          }
          for (const e of out.events) {
            process.stdout.write(
              `${new Date(e.timestamp_ms).toISOString()}  ${e.event_type.padEnd(13)} ${e.decision.padEnd(5)} ${(e.target ?? '').padEnd(30)} ${e.rule_id ?? '-'}  ${e.reason}\n`,
            );
          }
        },
      ),
    );
  withSocket(
    program
      .command('stats')
      .description(
        'Counters of a running gateway (per family, per rule, ledger, reloads) as JSON.',
      ),
  ).action(
    action(async (flags: SocketFlags) => {
      process.stdout.write(`${JSON.stringify(await run(flags, 'GET', '/v1/stats'), null, 2)}\n`);
    }),
  );
  const rules =
    program.commands.find((c) => c.name() === 'rules') ??
    program.command('rules').description('Manage rules.');
  withSocket(
    rules
      .command('install <file>')
      .description(
        'Install or update the rules of a file (one rule, a list, or a pack) in a running gateway: all of them or, on any problem, none. They survive a restart.',
      ),
  ).action(
    action(async (file: string, flags: SocketFlags) => {
      // A pack file is checked here first, so problems carry file:line:column as in `rules lint`.
      const text = readFileSync(file, 'utf8');
      const list = readRulesFile(file);
      if (!file.endsWith('.json') && /^\s*rules\s*:/m.test(text)) {
        const parsed = parsePack(text, file);
        if (!parsed.ok) {
          for (const i of parsed.issues) process.stderr.write(`${formatIssue(i)}\n`);
          throw new CelgateError(
            'E_RULE_INVALID',
            `${parsed.issues.length} problem${parsed.issues.length === 1 ? '' : 's'} in ${file}; nothing was installed`,
          );
        }
      }
      const out = await run(flags, 'POST', '/v1/rules', { rules: list });
      for (const r of out.rules as { id: string }[]) process.stdout.write(`installed ${r.id}\n`);
      process.stdout.write(
        `${out.rules.length} rule${out.rules.length === 1 ? '' : 's'} installed (generation ${out.generation})\n`,
      );
    }),
  );
  withSocket(
    rules
      .command('list')
      .description('The rules of a running gateway: id, pack, source, enabled, mode, matches.'),
  )
    .option('--json', 'print JSON')
    .action(
      action(async (flags: SocketFlags & { json?: boolean }) => {
        const out = await run(flags, 'GET', '/v1/rules');
        const list = out.rules as {
          id: string;
          pack_id: string;
          kind: string;
          enabled: boolean;
          mode: string;
          action: string;
          counters: { matches: number };
        }[];
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return;
        }
        const source = (r: (typeof list)[number]) =>
          r.pack_id === 'runtime' ? 'runtime (API)' : r.kind === 'detection' ? 'detection' : 'pack';
        const rows = [
          ['ID', 'PACK', 'SOURCE', 'ENABLED', 'MODE', 'ACTION', 'MATCHES'],
          ...list.map((r) => [
            r.id,
            r.pack_id,
            source(r),
            r.enabled ? 'yes' : 'no',
            r.mode,
            r.action,
            String(r.counters.matches),
          ]),
        ];
        const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
        for (const row of rows)
          process.stdout.write(
            `${row
              .map((v, c) => v.padEnd(widths[c]!))
              .join('  ')
              .trimEnd()}\n`,
          );
      }),
    );
  withSocket(
    rules
      .command('export')
      .description('The running rules as one YAML pack (loadable with --rules), on stdout.'),
  )
    .option('--id <pack_id>', 'the id of the exported pack', 'exported')
    .action(
      action(async (flags: SocketFlags & { id: string }) => {
        const out = await run(flags, 'GET', '/v1/rules');
        const health = await run(flags, 'GET', '/v1/health').catch(() => ({
          session_id: 'unknown',
        }));
        const keep = [
          'id',
          'description',
          'condition',
          'action',
          'priority',
          'mode',
          'enabled',
          'reason',
          'severity',
          'tags',
          'undecodable_body',
        ];
        const rulesOut = (out.rules as Record<string, unknown>[])
          .filter((r) => r.kind !== 'detection')
          .map((r) =>
            Object.fromEntries(
              keep
                .filter(
                  (k) =>
                    r[k] !== undefined &&
                    r[k] !== null &&
                    !(Array.isArray(r[k]) && (r[k] as unknown[]).length === 0),
                )
                .map((k) => [k, r[k]]),
            ),
          );
        process.stdout.write(
          stringifyYaml({
            id: flags.id,
            version: '1',
            description: `rules exported from session ${health.session_id} (generation ${out.generation})`,
            default_action: out.default_action ?? 'allow',
            rules: rulesOut,
          }),
        );
      }),
    );
  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    withSocket(
      rules
        .command(`${verb} <id>`)
        .description(
          `${verb === 'enable' ? 'Enable' : 'Disable'} a rule in a running gateway (counters kept).`,
        ),
    ).action(
      action(async (id: string, flags: SocketFlags) => {
        const out = await run(flags, 'PATCH', `/v1/rules/${encodeURIComponent(id)}`, { enabled });
        process.stdout.write(`${verb}d ${out.rule.id} (generation ${out.generation})\n`);
      }),
    );
  }
  withSocket(
    rules.command('delete <id>').description('Delete a rule from a running gateway.'),
  ).action(
    action(async (id: string, flags: SocketFlags) => {
      const out = await run(flags, 'DELETE', `/v1/rules/${encodeURIComponent(id)}`);
      process.stdout.write(`deleted ${out.deleted} (generation ${out.generation})\n`);
    }),
  );
}
