/**
 * Command-line flags of the benchmark entry points (`bench:security`, `bench:peers`): `--help`
 * prints the usage, and an unknown flag or a flag missing its value is an error — a typo such as
 * `--run 3` must not silently start a ten-minute run with the defaults.
 *
 * Owns: flag parsing for bench/*.ts mains. Must not: validate values (each main checks its own).
 */

export interface FlagSpec {
  /** Flags that take a value (`--runs 8`). */
  values: readonly string[];
  /** Flags that stand alone (`--break`). */
  switches: readonly string[];
}

export type Flags = {
  kind: 'ok';
  values: ReadonlyMap<string, string>;
  switches: ReadonlySet<string>;
};
export type ParsedFlags = { kind: 'help' } | { kind: 'error'; message: string } | Flags;

export function parseFlags(argv: readonly string[], spec: FlagSpec): ParsedFlags {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return { kind: 'help' };
    if (spec.switches.includes(a)) {
      switches.add(a);
    } else if (spec.values.includes(a)) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--'))
        return { kind: 'error', message: `${a} needs a value` };
      values.set(a, v);
      i += 1;
    } else {
      const known = [...spec.values, ...spec.switches].join(', ');
      return { kind: 'error', message: `unknown argument "${a}" (known: ${known}, --help)` };
    }
  }
  return { kind: 'ok', values, switches };
}

/** For a main: the flags, or the exit code after printing the usage (0) or the error (2). */
export function flagsOrExit(
  argv: readonly string[],
  spec: FlagSpec,
  usage: string,
): Flags | number {
  const parsed = parseFlags(argv, spec);
  if (parsed.kind === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  if (parsed.kind === 'error') {
    process.stderr.write(`${parsed.message}\n`);
    return 2;
  }
  return parsed;
}
