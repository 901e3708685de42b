import { describe, expect, it } from 'vitest';
import { parseFlags } from '../../bench/args.js';
import { main as peersMain, USAGE as PEERS_USAGE } from '../../bench/peers.js';
import { main as securityMain, USAGE as SECURITY_USAGE } from '../../bench/security.js';

const spec = { values: ['--runs', '--lanes'], switches: ['--break'] };

describe('bench flags', () => {
  it('parses values and switches', () => {
    const r = parseFlags(['--runs', '3', '--break', '--lanes', ''], spec);
    expect(r.kind).toBe('ok');
    if (r.kind !== 'ok') return;
    expect(r.values.get('--runs')).toBe('3');
    expect(r.values.get('--lanes')).toBe('');
    expect(r.switches.has('--break')).toBe(true);
  });

  it('answers --help and -h', () => {
    expect(parseFlags(['--runs', '3', '--help'], spec).kind).toBe('help');
    expect(parseFlags(['-h'], spec).kind).toBe('help');
  });

  it('rejects an unknown flag, naming it and the known ones', () => {
    const r = parseFlags(['--run', '3'], spec);
    expect(r).toEqual({
      kind: 'error',
      message: expect.stringContaining('unknown argument "--run"'),
    });
    expect((r as { message: string }).message).toContain('--runs, --lanes, --break');
  });

  it('rejects a value flag without its value', () => {
    expect(parseFlags(['--runs'], spec)).toEqual({
      kind: 'error',
      message: '--runs needs a value',
    });
    expect(parseFlags(['--runs', '--break'], spec)).toEqual({
      kind: 'error',
      message: '--runs needs a value',
    });
  });
});

describe('bench mains', () => {
  it('--help prints the usage and runs nothing', async () => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string) => (out.push(c), true)) as typeof process.stdout.write;
    try {
      expect(await securityMain(['--help'])).toBe(0);
      expect(await peersMain(['--help'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(out.join('')).toBe(SECURITY_USAGE + PEERS_USAGE);
    expect(SECURITY_USAGE).toContain('--runs N');
    expect(PEERS_USAGE).toContain('--seconds S');
  });

  it('a typo is an error (exit 2), not a run with defaults', async () => {
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string) => (err.push(c), true)) as typeof process.stderr.write;
    try {
      expect(await securityMain(['--run', '3'])).toBe(2);
      expect(await peersMain(['--second', '1'])).toBe(2);
      expect(await peersMain(['--seconds', '0'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(err.join('')).toMatch(
      /unknown argument "--run"[\s\S]*unknown argument "--second"[\s\S]*--seconds must be/,
    );
  });
});
