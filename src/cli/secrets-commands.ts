/**
 * `celgate secrets list`: the secrets a config file names — id, source, hosts, options, and
 * whether each can be loaded now — never a value (only its length, to tell an empty or wrong
 * variable from the right one). Reads the config and the sources; talks to no gateway.
 */
import type { Command } from 'commander';
import { secretStatuses } from '../transport/secrets.js';
import { loadConfig } from '../gateway/config.js';

export function registerSecretsCommands(program: Command): void {
  const secrets = program
    .command('secrets')
    .description('Credentials the gateway substitutes at egress (docs/secrets.md).');
  secrets
    .command('list')
    .description(
      'List the configured secrets and whether each loads (values are never shown). Exit 1 when one does not.',
    )
    .option('-c, --config <file>', 'the gateway configuration file')
    .option('--json', 'print JSON')
    .action((o: { config?: string; json?: boolean }) => {
      let list;
      try {
        list = secretStatuses(loadConfig(o.config).secrets);
      } catch (err) {
        process.stderr.write(`celgate secrets: ${(err as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      if (o.json === true) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else if (list.length === 0)
        process.stdout.write(
          `no secrets configured${o.config === undefined ? ' (give -c <config file>)' : ''}\n`,
        );
      else {
        for (const s of list) {
          const opts = [s.in_body ? 'in_body' : '', s.allow_plain_http ? 'allow_plain_http' : '']
            .filter((x) => x !== '')
            .join(', ');
          const state = s.loaded ? `loaded (${s.length} characters)` : `NOT LOADED: ${s.problem}`;
          process.stdout.write(
            `${s.id.padEnd(20)} ${s.source.padEnd(34)} → ${s.hosts.join(', ')}${opts === '' ? '' : `  [${opts}]`}  ${state}\n`,
          );
        }
      }
      if (list.some((s) => !s.loaded)) process.exitCode = 1;
    });
}
