/**
 * Lowering is checked against a reference evaluator of the IR itself: random match trees (all / any /
 * not over a pool of predicates) on random events must fire through the real engine exactly when the
 * IR semantics say so.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectionEngine } from '../../src/detection/install.js';
import { http, load, packWith } from './helpers.js';

interface Facts {
  host: string;
  path: string;
  method: string;
  ua: string | undefined;
  cookie: string | undefined;
  body: string;
  port: number;
}

const POOL: { ir: Record<string, unknown>; holds: (f: Facts) => boolean }[] = [
  { ir: { field: 'http.request.host', equals: ['a.com'] }, holds: (f) => f.host === 'a.com' },
  {
    ir: { field: 'http.request.host', endswith: ['.b.com'] },
    holds: (f) => f.host.endsWith('.b.com'),
  },
  { ir: { field: 'http.request.path', startswith: ['/x'] }, holds: (f) => f.path.startsWith('/x') },
  {
    ir: { field: 'http.request.method', equals: ['post'], case_insensitive: true },
    holds: (f) => f.method.toLowerCase() === 'post',
  },
  {
    ir: { field: 'http.request.headers.user-agent', contains: ['bot'], case_insensitive: true },
    holds: (f) => f.ua !== undefined && f.ua.toLowerCase().includes('bot'),
  },
  {
    ir: { field: 'http.request.headers.cookie', exists: true },
    holds: (f) => f.cookie !== undefined,
  },
  {
    ir: { field: 'http.request.body.text', contains: ['k='] },
    holds: (f) => f.body.includes('k='),
  },
  { ir: { field: 'http.request.port', equals: [8443] }, holds: (f) => f.port === 8443 },
  {
    ir: { field: 'http.request.path', matches: ['^/[xy]/[0-9]+$'] },
    holds: (f) => /^\/[xy]\/[0-9]+$/.test(f.path),
  },
];

type Tree = { leaf: number } | { all: Tree[] } | { any: Tree[] } | { not: Tree };

function toIr(t: Tree): unknown {
  if ('leaf' in t) return POOL[t.leaf]!.ir;
  if ('all' in t) return { all: t.all.map(toIr) };
  if ('any' in t) return { any: t.any.map(toIr) };
  return { not: toIr(t.not) };
}

function evaluate(t: Tree, f: Facts): boolean {
  if ('leaf' in t) return POOL[t.leaf]!.holds(f);
  if ('all' in t) return t.all.every((c) => evaluate(c, f));
  if ('any' in t) return t.any.some((c) => evaluate(c, f));
  return !evaluate(t.not, f);
}

const tree: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ leaf: fc.integer({ min: 0, max: POOL.length - 1 }) }),
    fc.record({ all: fc.array(tie('tree'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ any: fc.array(tie('tree'), { minLength: 1, maxLength: 3 }) }),
    fc.record({ not: tie('tree') }),
  ),
})).tree;

const facts: fc.Arbitrary<Facts> = fc.record({
  host: fc.constantFrom('a.com', 'z.b.com', 'c.org'),
  path: fc.constantFrom('/x/1', '/y/22', '/x', '/z'),
  method: fc.constantFrom('POST', 'GET', 'post'),
  ua: fc.constantFrom(undefined, 'MyBOT/1', 'curl/8'),
  cookie: fc.constantFrom(undefined, 'c=1'),
  body: fc.constantFrom('', 'k=1', 'x'),
  port: fc.constantFrom(443, 8443),
});

describe('lowering agrees with the IR semantics', () => {
  it('for random trees and events', () => {
    fc.assert(
      fc.property(tree, fc.array(facts, { minLength: 1, maxLength: 6 }), (t, events) => {
        const { engine } = detectionEngine([load(packWith(toIr(t)))]);
        for (const f of events) {
          const headers: Record<string, string> = {};
          if (f.ua !== undefined) headers['user-agent'] = f.ua;
          if (f.cookie !== undefined) headers.cookie = f.cookie;
          const d = engine.decide(
            http({
              host: f.host,
              path: f.path,
              method: f.method,
              headers,
              body: f.body,
              port: f.port,
            }),
          );
          expect(d.errors).toEqual([]);
          expect(d.findings.length === 1).toBe(evaluate(t, f));
        }
      }),
      { numRuns: 150 },
    );
  });
});
