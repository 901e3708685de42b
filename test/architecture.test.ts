/**
 * The architecture is checked, not hoped for: every import edge between src/ areas must be in the
 * allowed set of docs/architecture.md, the pure layers import no socket modules, and the whole
 * project type-checks.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  version: [],
  events: ['errors'],
  policy: ['events', 'errors'],
  detection: ['policy', 'events', 'errors'],
  store: ['events', 'errors'],
  certs: ['errors'],
  transport: ['policy', 'events', 'certs', 'errors', 'version'],
  control: ['policy', 'detection', 'store', 'events', 'errors', 'version'],
  fleet: ['store', 'events', 'errors'],
  gateway: [
    'errors',
    'version',
    'events',
    'policy',
    'detection',
    'store',
    'certs',
    'transport',
    'control',
    'fleet',
  ],
  cli: [
    'gateway',
    'errors',
    'version',
    'events',
    'policy',
    'detection',
    'store',
    'certs',
    'transport',
    'control',
    'fleet',
  ],
};
const PURE = ['events', 'policy', 'detection', 'store'];
const SOCKET_MODULES = [
  'node:net',
  'node:tls',
  'node:dgram',
  'node:http',
  'node:https',
  'node:http2',
  'net',
  'tls',
  'dgram',
  'dns-packet',
  'undici',
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function areaOf(file: string): string {
  const rel = relative(SRC, file);
  const first = rel.split('/')[0]!;
  return first.endsWith('.ts') ? first.slice(0, -3) : first;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(
    /\b(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
  )) {
    out.push((m[1] ?? m[2])!);
  }
  return out;
}

describe('architecture', () => {
  const sources = files(SRC);

  it('has every area of the layout', () => {
    for (const area of Object.keys(ALLOWED))
      expect(
        sources.some((f) => areaOf(f) === area),
        area,
      ).toBe(true);
  });

  it('keeps every import edge between areas inside the allowed set', () => {
    const bad: string[] = [];
    for (const file of sources) {
      const from = areaOf(file);
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(SRC)) {
          bad.push(`${relative(ROOT, file)} imports ${spec} (outside src)`);
          continue;
        }
        const to = areaOf(target.replace(/\.js$/, '.ts'));
        if (to !== from && !(ALLOWED[from] ?? []).includes(to))
          bad.push(`${relative(ROOT, file)}: ${from} → ${to} (${spec})`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('keeps bench/ and support/ independent of test/ (support/ imports only src/)', () => {
    const bad: string[] = [];
    const TEST = join(ROOT, 'test');
    const SUPPORT = join(ROOT, 'support');
    for (const dir of ['bench', 'support']) {
      for (const file of files(join(ROOT, dir))) {
        for (const spec of importsOf(file)) {
          if (!spec.startsWith('.')) continue;
          const target = resolve(dirname(file), spec);
          if (target.startsWith(TEST + '/')) bad.push(`${relative(ROOT, file)} imports ${spec}`);
          if (dir === 'support' && !target.startsWith(SRC) && !target.startsWith(SUPPORT))
            bad.push(`${relative(ROOT, file)} imports ${spec} (support/ may import src/ only)`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('keeps sockets, DNS wire code and proxies out of the pure layers', () => {
    const bad: string[] = [];
    for (const file of sources.filter((f) => PURE.includes(areaOf(f)))) {
      for (const spec of importsOf(file))
        if (SOCKET_MODULES.includes(spec)) bad.push(`${relative(ROOT, file)} imports ${spec}`);
    }
    expect(bad).toEqual([]);
  });

  it('has no import cycle between two files', () => {
    const edges = new Map<string, Set<string>>();
    for (const file of sources) {
      edges.set(
        file,
        new Set(
          importsOf(file)
            .filter((s) => s.startsWith('.'))
            .map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts')),
        ),
      );
    }
    const cycles: string[] = [];
    for (const [a, to] of edges)
      for (const b of to)
        if (a < b && edges.get(b)?.has(a) === true)
          cycles.push(`${relative(ROOT, a)} <-> ${relative(ROOT, b)}`);
    expect(cycles).toEqual([]);
  });

  it('keeps one source for the version string (src/version.ts, equal to package.json)', async () => {
    const { CELGATE_VERSION } = await import('../src/version.js');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    expect(CELGATE_VERSION).toBe(version);
    const copies = sources.filter(
      (f) => !f.endsWith('/version.ts') && readFileSync(f, 'utf8').includes(`'${version}'`),
    );
    expect(copies.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('type-checks (tsc --noEmit)', () => {
    let output = '';
    try {
      execFileSync(
        process.execPath,
        [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', ROOT],
        { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' },
      );
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err);
    }
    expect(output).toBe('');
  }, 120_000);
});
