/**
 * The `celgate` command line. Each area registers its own subcommands; this file only assembles them.
 * Modules are imported only for the command being run (the gateway's dependencies take a second to
 * load, which `celgate exec` or `celgate rules lint` should not pay); `--help` loads them all.
 */
import { Command } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { CELGATE_VERSION } from '../version.js';

type Register = (program: Command) => void;

/**
 * V8 flags for the long-running gateway, set before its modules load. Allocation-site pretenuring
 * misjudged the gateway's per-request objects (HTTP messages, events) as long-lived when load
 * arrived soon after start: V8 then allocated them straight into the old generation, the young
 * objects they point to survived every scavenge, scavenges took 6–12 ms instead of 1–2, and the
 * gateway spent 15–25 % more CPU per request for as long as the load lasted (docs/benchmarks.md,
 * "Garbage collection"). Without pretenuring, a really long-lived object costs one extra copy.
 */
const GATEWAY_V8_FLAGS = ['--no-allocation-site-pretenuring'];

/** Which modules register each top-level command. */
const MODULES: Record<string, readonly (() => Promise<Register>)[]> = {
  ca: [async () => (await import('./ca-commands.js')).registerCaCommands],
  ir: [async () => (await import('./ir-commands.js')).registerIrCommands],
  rules: [
    async () => (await import('./policy-commands.js')).registerPolicyCommands,
    async () => (await import('./gateway-commands.js')).registerGatewayCommands,
  ],
  evaluate: [async () => (await import('./policy-commands.js')).registerPolicyCommands],
  start: [async () => (await import('./start.js')).registerStart],
  events: [async () => (await import('./gateway-commands.js')).registerGatewayCommands],
  stats: [async () => (await import('./gateway-commands.js')).registerGatewayCommands],
  'guest-bridge': [async () => (await import('./guest-commands.js')).registerGuestCommands],
  'mcp-shim': [async () => (await import('./guest-commands.js')).registerGuestCommands],
  exec: [async () => (await import('./guest-commands.js')).registerGuestCommands],
  fleet: [async () => (await import('./fleet-commands.js')).registerFleetCommands],
  secrets: [async () => (await import('./secrets-commands.js')).registerSecretsCommands],
  report: [async () => (await import('./report-commands.js')).registerReportCommands],
  approvals: [async () => (await import('./approvals-commands.js')).registerApprovalsCommands],
};

const program = new Command()
  .name('celgate')
  .description(
    'Egress security gateway for sandboxed AI agents: intercept, judge with CEL, record.',
  )
  .version(CELGATE_VERSION)
  .showHelpAfterError('(run with --help for usage)');

const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (command === 'start') {
  // A flag node was given explicitly (e.g. --allocation-site-pretenuring) wins.
  for (const flag of GATEWAY_V8_FLAGS)
    if (!process.execArgv.includes(flag.replace(/^--no-/, '--'))) setFlagsFromString(flag);
}
const loaders =
  command !== undefined && MODULES[command] !== undefined
    ? MODULES[command]
    : Object.values(MODULES).flat();
const registered = new Set<Register>();
for (const load of loaders) {
  const register = await load();
  if (registered.has(register)) continue;
  registered.add(register);
  register(program);
}

await program.parseAsync(process.argv);
