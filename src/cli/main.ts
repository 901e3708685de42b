/**
 * The `celgate` command line. Each area registers its own subcommands; this file only assembles them.
 */
import { Command } from 'commander';
import { registerCaCommands } from './ca-commands.js';
import { registerIrCommands } from './ir-commands.js';
import { registerPolicyCommands } from './policy-commands.js';
import { registerStart } from './start.js';
import { registerGatewayCommands } from './gateway-commands.js';
import { registerGuestCommands } from './guest-commands.js';

const program = new Command()
  .name('celgate')
  .description('Egress security gateway for sandboxed AI agents: intercept, judge with CEL, record.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

registerCaCommands(program);
registerIrCommands(program);
registerPolicyCommands(program);
registerStart(program);
registerGatewayCommands(program);
registerGuestCommands(program);

await program.parseAsync(process.argv);
