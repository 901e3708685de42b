/**
 * Policy micro suite (DESIGN §10, issue #2): compile, evaluate, decide, registry and projection, under
 * the reference names, reusing the test fixtures. Every task's output is checked once before timing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeArtifact, repoRoot, type Artifact, type AssertionResult } from './artifact.js';
import { checkGoals, runIfMain, runTasks, type Goal, type MicroTask } from './micro-kit.js';
import { eventFromJson } from '../src/events/build.js';
import type { EventOf, SecurityEvent } from '../src/events/types.js';
import { celContext } from '../src/policy/celenv.js';
import { compileCondition, type CompiledCondition } from '../src/policy/compile.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { loadPackFiles } from '../src/policy/packs.js';
import { buildPlan, compiledRule } from '../src/policy/plan.js';
import { project } from '../src/policy/projection.js';
import { RuleRegistry } from '../src/policy/registry.js';
import type { RuleDefinition } from '../src/policy/types.js';

/** The five reference expressions, from the test fixture (test/fixtures/policy/reference-expressions.json). */
export const REFERENCE: readonly string[] = JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/policy/reference-expressions.json'), 'utf8'));
export const FULL = REFERENCE.join(' && ');

export function referenceEvent(): SecurityEvent {
  const parsed = eventFromJson(JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/events/reference-http.json'), 'utf8')));
  if (!parsed.ok) throw new Error('reference fixture does not parse');
  return parsed.value;
}

export function hundredRules(): { rules: RuleDefinition[]; compiled: ReadonlyMap<string, CompiledCondition> } {
  const set = loadPackFiles([join(repoRoot(), 'test/fixtures/packs/hundred-rules.yaml')]);
  if (!set.ok) throw new Error('hundred-rules fixture does not load');
  return { rules: set.value.rules, compiled: set.value.compiled };
}

/** The full policy in plain JS over the same event: the floor CEL is compared with. */
export function nativeFullPolicy(e: SecurityEvent): boolean {
  if (e.common.event_type !== 'http.request') return false;
  const r = (e as EventOf<'http.request'>).http.request;
  return r.host.includes('google') && r.url.includes('google') && r.path.startsWith('/admin') && r.headers['authorization'] !== undefined && r.body.text.includes('secret');
}

export const GOALS: Goal[] = [
  { result: 'Evaluate full HTTP policy with projection', ratioTo: 'Native JS lookup for equivalent HTTP policy', max_ratio: 40, reference: '~1,600×' },
  { result: 'Evaluate full HTTP policy as last match across 100 rules', max_us: 15, reference: '3.47 ms' },
  { result: 'Compile full HTTP policy', max_us: 20, reference: '109 µs' },
  { result: 'Update one existing rule and rebuild 100-rule plan', max_us: 50, reference: '688.8 µs' },
  { result: 'Project SecurityEvent to PolicyContext', max_us: 0.5, reference: '903 ns' },
];

function must(cond: boolean, name: string, detail = ''): AssertionResult {
  if (!cond) throw new Error(`bench precondition failed: ${name} ${detail}`);
  return { name, ok: true, detail };
}

export async function run(): Promise<Artifact> {
  const event = referenceEvent();
  const ctx = project(event);
  const assertions: AssertionResult[] = [];
  const compiled = (text: string) => {
    const c = compileCondition(text);
    if (!c.ok) throw new Error(`${text}: ${c.issues[0]!.message}`);
    return c.condition;
  };
  assertions.push(must(REFERENCE.length === 5 && REFERENCE[0] === 'http.request.host.contains("google")', 'the five reference expressions loaded'));
  const programs = REFERENCE.map((t) => compiled(t));
  const full = compiled(FULL);
  for (const p of [...programs, full]) assertions.push(must(p.program(ctx) === true && p.engine === 'closure', `evaluates true via closures: ${p.text.slice(0, 60)}`));
  assertions.push(must(nativeFullPolicy(event), 'native baseline matches the reference event'));

  // One-rule engine and the 100-rule engine.
  const single = new RuleRegistry();
  single.install({ id: 'full-policy', description: '', condition: FULL, action: 'block', priority: 0, mode: 'enforce', reason: 'bench', enabled: true, severity: null, tags: [], pack_id: 'bench', kind: 'enforcement' });
  const singleEngine = new PolicyEngine(single);
  const { rules, compiled: pre } = hundredRules();
  const hundred = new RuleRegistry();
  hundred.replaceAll(rules, 'allow', pre);
  const hundredEngine = new PolicyEngine(hundred);
  const d = hundredEngine.decide(event);
  assertions.push(must(d.action === 'block' && d.rule_id === 'full-policy' && d.matches.length === 1, 'last of 100 rules decides', `${d.rule_id}`));
  const beforeMatches = hundred.get('full-policy')!.counters.matches;

  // Registry fixtures.
  const compiledRules = rules.map((r) => compiledRule(r, pre.get(r.condition)!));
  const detectionRules = rules.map((r) =>
    compiledRule({ ...r, id: `det-${r.id}`, kind: 'detection', action: 'allow', detection: { title: r.id, confidence: 0.8, tags: [], matched_fields: [] } }, pre.get(r.condition)!),
  );
  const target = rules[50]!;
  const alternate = ['http.request.host == "api.vendor50.example.com" && http.request.path.startsWith("/v50/")', 'http.request.host == "api.vendor50.example.org" && http.request.path.startsWith("/v50/")'];
  let flip = 0;
  const alreadyCompiled = pre.get(target.condition)!;

  let sink = 0;
  const tasks: MicroTask[] = [
    { name: 'Compile http.request.host.contains("google")', batch: 10, fn: () => void compileCondition(REFERENCE[0]!) },
    { name: 'Compile full HTTP policy', batch: 5, fn: () => void compileCondition(FULL) },
    ...REFERENCE.map((text, i) => ({ name: `Evaluate ${text}`, batch: 2000, fn: () => void (sink += programs[i]!.program(ctx) === true ? 1 : 0) })),
    { name: 'Evaluate full HTTP policy', batch: 2000, fn: () => void (sink += full.program(ctx) === true ? 1 : 0) },
    { name: 'Evaluate full HTTP policy with projection', batch: 2000, fn: () => void (sink += full.program(project(event)) === true ? 1 : 0) },
    { name: 'Native JS lookup for equivalent HTTP policy', batch: 2000, fn: () => void (sink += nativeFullPolicy(event) ? 1 : 0) },
    { name: 'Decide full HTTP policy (engine, one rule)', batch: 500, fn: () => void (sink += singleEngine.decide(event).action === 'block' ? 1 : 0) },
    { name: 'Evaluate full HTTP policy as last match across 100 rules', batch: 50, fn: () => void (sink += hundredEngine.decide(event).action === 'block' ? 1 : 0) },
    { name: 'Runtime registry install/update of one rule', batch: 20, fn: () => void hundred.install(target, alreadyCompiled) },
    { name: 'Runtime registry projection of 100 enabled rules', batch: 50, fn: () => void buildPlan(compiledRules, 1, 'allow') },
    {
      name: 'Runtime projection and compile of 100 enforcement rules',
      batch: 1,
      fn: () => void buildPlan(rules.map((r) => compiledRule(r, (compileCondition(r.condition) as { condition: CompiledCondition }).condition)), 1, 'allow'),
    },
    { name: 'Rebuild engine from 100 enforcement and 100 detection rules', batch: 20, fn: () => void buildPlan([...compiledRules, ...detectionRules], 1, 'allow') },
    { name: 'Update one existing rule and rebuild 100-rule plan', batch: 5, fn: () => void hundred.install({ ...target, condition: alternate[flip++ & 1]! }) },
    { name: 'Project SecurityEvent to PolicyContext', batch: 2000, fn: () => void (sink += project(event).common === event.common ? 1 : 0) },
    { name: 'Project SecurityEvent to cel-js context (fallback rules only)', batch: 200, fn: () => void (sink += celContext(event).common === undefined ? 0 : 1) },
  ];
  const results = await runTasks(tasks);
  assertions.push(must(sink > 0, 'tasks produced results', `${sink}`));
  const after = hundred.get('full-policy')!.counters.matches;
  assertions.push(must(after > beforeMatches, 'the 100-rule plan counted its matches', `${after - beforeMatches} matches recorded`));
  assertions.push(must(hundred.get(target.id)!.condition !== target.condition || flip > 0, 'updates were applied', `${flip} updates`));
  assertions.push(...checkGoals(results, GOALS));
  return writeArtifact({ kind: 'micro', name: 'policy', results, assertions, notes: { fixture: 'test/fixtures/packs/hundred-rules.yaml', event: 'test/fixtures/events/reference-http.json' } });
}

await runIfMain(import.meta.url, run);
