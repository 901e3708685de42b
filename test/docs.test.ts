/**
 * Docs are reference, not a diary: no dated run narration, run ids or "final-N" labels in docs/ or
 * the README (measurements live in benchmarks/results/ and closing notes).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const files = [
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f)),
  'README.md',
];
/** Text outside fenced code blocks (examples may show dates, e.g. `--since 2026-…`). */
const prose = (text: string) => text.replace(/```[\s\S]*?```/g, '');
const PATTERNS: [string, RegExp][] = [
  ['a date', /\b20\d\d-\d\d-\d\d\b/],
  ['a run label', /\bfinal-\d+\b/],
  ['a time of day', /\b\d\d:\d\d(–\d\d:\d\d)? UTC\b/],
];

it.each(files)('%s holds no dated narration', (file) => {
  const text = prose(readFileSync(join(ROOT, file), 'utf8'));
  for (const [what, re] of PATTERNS)
    expect(re.exec(text)?.[0], `${what} in ${file}`).toBeUndefined();
});
