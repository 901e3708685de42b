/**
 * The `celgate` command line. Each area registers its own subcommands; this file only assembles them.
 * Modules are imported only for the command being run (the gateway's dependencies take a second to
 * load, which `celgate exec` or `celgate rules lint` should not pay); `--help` loads them all.
 */
import { Command } from 'commander';

type Register = (program: Command) => void;

/** Which modules register each top-level command. */
const MODULES: Record<string, readonly (() => Promise<Register>)[]> = {
  ca: [async () => (await import('./ca-commands.js')).registerCaCommands],
  ir: [async () => (await import('./ir-commands.js')).registerIrCommands],
  rules: [async () => (await import('./policy-commands.js')).registerPolicyCommands, async () => (await import('./gateway-commands.js')).registerGatewayCommands],
  evaluate: [async () => (await import('./policy-commands.js')).registerPolicyCommands],
  start: [async () => (await import('./start.js')).registerStart],
  events: [async () => (await import('./gateway-commands.js')).registerGatewayCommands],
  stats: [async () => (await import('./gateway-commands.js')).registerGatewayCommands],
  'guest-bridge': [async () => (await import('./guest-commands.js')).registerGuestCommands],
  'mcp-shim': [async () => (await import('./guest-commands.js')).registerGuestCommands],
  exec: [async () => (await import('./guest-commands.js')).registerGuestCommands],
};

const program = new Command()
  .name('celgate')
  .description('Egress security gateway for sandboxed AI agents: intercept, judge with CEL, record.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
const loaders = command !== undefined && MODULES[command] !== undefined ? MODULES[command] : Object.values(MODULES).flat();
const registered = new Set<Register>();
for (const load of loaders) {
  const register = await load();
  if (registered.has(register)) continue;
  registered.add(register);
  register(program);
}

await program.parseAsync(process.argv);
