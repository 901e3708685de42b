/**
 * Detection IR micro suite (DESIGN §10, issue #8) under the reference names: parse+validate, lower,
 * lower+compile, detection findings inline, and evidence dedupe — reusing the test fixtures. Every
 * task's output is checked once before timing, so the bench cannot silently measure something else.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  repoRoot,
  summarize,
  writeArtifact,
  type Artifact,
  type AssertionResult,
  type Summary,
} from './artifact.js';
import { checkGoals, runIfMain, runTasks, type Goal, type MicroTask } from './micro-kit.js';
import { EvidenceDeduper, evidenceSignature } from '../src/detection/evidence.js';
import { CorrelationEngine } from '../src/detection/correlate.js';
import { detectionEngine, loadPackText, type LoadedPack } from '../src/detection/install.js';
import { lowerRule } from '../src/detection/lower.js';
import { validatePackText } from '../src/detection/validate.js';
import { eventFromJson } from '../src/events/build.js';
import type { Finding } from '../src/events/decision.js';
import type { SecurityEvent } from '../src/events/types.js';
import { compileCondition } from '../src/policy/compile.js';

export const GOALS: Goal[] = [
  { result: 'IR parse+validate one pack', max_us: 100, reference: '410 µs' },
  { result: 'IR lower and compile 100 rules', max_us: 1500, reference: '7.2 ms' },
  { result: 'Dedupe 1,000 rows / 100 signatures', max_us: 300, reference: '584 µs' },
  { result: 'Detection as last match across 100 rules', max_us: 20, reference: '3.46 ms' },
  {
    result: 'IR lower and compile 100 rules of 1,000 values',
    max_us: 50_000,
    reference: 'issue #21',
  },
  {
    result: 'Last match of 1,000 equals values (case-insensitive)',
    max_us: 5,
    reference: 'issue #21',
  },
  {
    result: 'Last match of 1,000 contains values (case-insensitive)',
    max_us: 5,
    reference: 'issue #21',
  },
  {
    result: 'Last match of 1,000 startswith values (case-insensitive)',
    max_us: 5,
    reference: 'issue #21',
  },
  { result: 'Last match of 1,000 endswith values', max_us: 5, reference: 'issue #21' },
  {
    // 100,000 events per second on one core: 100,000 events in at most one second.
    result: '100 correlations over 100,000 events',
    max_us: 1_000_000,
    reference: 'issue #21',
  },
];

/** Correlation bench shape: 100 zones (one base rule and one correlation each), 10 groups per zone. */
const ZONES = 100;
const GROUPS_PER_ZONE = 10;
const CORR_EVENTS = 100_000;

/**
 * 100 dns.response rules (NXDOMAIN under zone i) and 100 correlations over them grouped by parent
 * domain: even zones a value_count of distinct names (more than 20 in 60 s), odd zones an
 * event_count (at least 50 in 60 s).
 */
function correlationBenchPack(): string {
  const rules = Array.from({ length: ZONES }, (_, i) => ({
    id: `nx-zone-${i}`,
    title: `NXDOMAIN under zone${i}.test`,
    event_type: 'dns.response',
    severity: 'informational',
    confidence: 0.2,
    match: {
      all: [
        { field: 'dns.response.rcode', equals: ['NXDOMAIN'] },
        { field: 'dns.response.qname', endswith: [`.zone${i}.test`] },
      ],
    },
  }));
  const correlations = rules.map((r, i) => ({
    id: `burst-zone-${i}`,
    title: `NXDOMAIN burst under zone${i}.test`,
    type: i % 2 === 0 ? 'value_count' : 'event_count',
    rules: [r.id],
    group_by: ['dns.response.parent_domain'],
    ...(i % 2 === 0 ? { field: 'dns.response.qname' } : {}),
    timespan: '60s',
    condition: i % 2 === 0 ? { gt: 20 } : { gte: 50 },
    severity: 'high',
  }));
  return JSON.stringify({
    schema: 'celgate.detection-ir/v1',
    id: 'bench-correlations',
    version: '1',
    status: 'active',
    owner: 'bench',
    rules,
    correlations,
  });
}

/** Event k: zone k % 100, group (k / 100) % 10, a distinct name, 10 µs apart (100,000 events/s). */
function correlationBenchEvents(): SecurityEvent[] {
  return Array.from({ length: CORR_EVENTS }, (_, k) => {
    const zone = k % ZONES;
    const group = Math.floor(k / ZONES) % GROUPS_PER_ZONE;
    const e = eventFromJson({
      common: {
        event_type: 'dns.response',
        event_id: `c${k}`,
        timestamp_ms: 1_700_000_000_000 + k / 100,
      },
      dns: {
        request: { qname: `n${k}.s${group}.zone${zone}.test`, qtype: 'A' },
        response: { rcode: 'NXDOMAIN' },
      },
    });
    if (!e.ok) throw new Error('correlation bench event does not parse');
    return e.value;
  });
}

type ListOp = 'equals' | 'contains' | 'startswith' | 'endswith';

/** The i-th User-Agent-like value of a 1,000-value list (distinct, sharing long prefixes like real lists). */
function listValue(op: ListOp, i: number): string {
  if (op === 'contains') return `scanner-${i}/${i % 10}.0`;
  if (op === 'startswith') return `Mozilla/5.0 (compatible; Scanner-${i}/`;
  if (op === 'endswith') return `Scanner-${i}/${i % 10}.0)`;
  return `Mozilla/5.0 (compatible; Scanner-${i}/${i % 10}.0; +https://scanner.example/${i})`;
}

/** A one-rule pack: one predicate with 1,000 User-Agent values (rule `r` of a series; ops rotate). */
function listPack(r: number, only?: ListOp): string {
  const ops: ListOp[] = ['equals', 'contains', 'startswith', 'endswith'];
  const rules = [0].map(() => {
    const op = only ?? ops[r % 4]!;
    return {
      id: `list-${r}`,
      title: `1,000 ${op} values`,
      event_type: 'http.request',
      severity: 'medium',
      confidence: 0.5,
      match: {
        field: 'http.request.headers.user-agent',
        [op]: Array.from({ length: 1000 }, (_, i) => `${listValue(op, i)}${r}`),
        case_insensitive: op !== 'endswith',
      },
    };
  });
  return JSON.stringify({
    schema: 'celgate.detection-ir/v1',
    id: 'lists',
    version: '1',
    status: 'active',
    owner: 'bench',
    rules,
  });
}

function uaEvent(ua: string): SecurityEvent {
  const e = eventFromJson({
    common: { event_type: 'http.request' },
    http: { request: { host: 'example.com', path: '/', headers: { 'user-agent': ua } } },
  });
  if (!e.ok) throw new Error('bench event does not parse');
  return e.value;
}

/**
 * Process CPU time per operation (µs), sampled `rounds` times: a load-independent companion to the
 * wall-clock medians when the 2-core machine is shared (time spent waiting for a core is not counted).
 */
function cpuTime(task: MicroTask, rounds = 15): Summary {
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const ops = Math.max(task.batch, 20);
    const start = process.cpuUsage();
    for (let i = 0; i < ops; i++) task.fn();
    const used = process.cpuUsage(start);
    per.push((used.user + used.system) / ops);
  }
  return summarize(per, 'us');
}

function read(path: string): string {
  return readFileSync(join(repoRoot(), path), 'utf8');
}

function must(cond: boolean, name: string, detail = ''): AssertionResult {
  if (!cond) throw new Error(`bench precondition failed: ${name} ${detail}`);
  return { name, ok: true, detail };
}

function load(path: string): LoadedPack {
  const r = loadPackText(read(path), path);
  if (!r.ok) throw new Error(`${path}: ${r.issues[0]!.message}`);
  return r.value;
}

function load2(text: string): LoadedPack {
  const r = loadPackText(text);
  if (!r.ok) throw new Error(r.issues[0]!.message);
  return r.value;
}

export async function run(): Promise<Artifact> {
  const assertions: AssertionResult[] = [];
  const refText = read('detection-ir/google-secret-egress.yaml');
  const parsed = eventFromJson(JSON.parse(read('test/fixtures/events/reference-http.json')));
  if (!parsed.ok) throw new Error('reference event does not parse');
  const event: SecurityEvent = parsed.value;

  const ref = load('detection-ir/google-secret-egress.yaml');
  const hundred = load('test/fixtures/detection/hundred-rules.ir.yaml');
  const refRule = ref.pack.rules[0]!;
  const hundredRules = hundred.pack.rules;
  const fullPolicyPack: LoadedPack = {
    pack: { ...hundred.pack, id: 'full-policy' },
    rules: hundred.rules.slice(-1),
  };

  const { engine: refEngine } = detectionEngine([ref]);
  const { engine: fullEngine } = detectionEngine([fullPolicyPack]);
  const { engine: hundredEngine } = detectionEngine([hundred]);
  assertions.push(must(validatePackText(refText).ok, 'the reference pack validates'));
  assertions.push(
    must(
      refEngine.decide(event).findings.length === 1,
      'the reference pack fires on the reference event',
    ),
  );
  assertions.push(
    must(
      fullEngine.decide(event).findings[0]?.rule_id === 'det-099-full-policy',
      'the full-policy detection fires',
    ),
  );
  const d = hundredEngine.decide(event);
  assertions.push(
    must(
      d.findings.length === 1 &&
        d.findings[0]!.rule_id === 'det-099-full-policy' &&
        d.errors.length === 0,
      'only the last of 100 detection rules fires',
      `${d.findings.map((f) => f.rule_id).join(',')}`,
    ),
  );
  const plan = hundredEngine.plan().byEventType['http.request'];
  assertions.push(
    must(
      plan.length === 100 && plan[99]!.def.id === 'det-099-full-policy',
      'the matching rule is evaluated last of 100',
    ),
  );

  // Dedupe inputs: findings with precomputed evidence signatures (signing is timed separately).
  const finding: Finding = d.findings[0]!;
  const sigs = Array.from({ length: 100 }, (_, i) =>
    evidenceSignature({
      ...event,
      common: { ...event.common, process_name: `p${i}` },
    } as SecurityEvent),
  );
  const rows1000 = Array.from({ length: 1000 }, (_, i) => ({
    f: { ...finding, event_id: `e${i}` },
    s: sigs[i % 100]!,
  }));
  const rows100 = rows1000.slice(0, 100);
  const dedupe = (rows: typeof rows1000) => {
    const dd = new EvidenceDeduper(100);
    for (const r of rows) dd.add(r.f, r.s, 0, () => 'summary');
    return dd.report();
  };
  const r1000 = dedupe(rows1000);
  assertions.push(
    must(
      r1000.total_matches === 1000 &&
        r1000.unique_evidence === 100 &&
        r1000.rows.length === 100 &&
        !r1000.truncated,
      'dedupe 1,000 rows gives 100 unique rows',
    ),
  );

  // Large value lists: 100 rules of 1,000 values (one pack each: 100 would pass the 1 MiB pack bound)
  // lowered and compiled; one rule per op matched by
  // its last value (the User-Agent of the event is long, like a real browser's).
  const listRules = Array.from({ length: 100 }, (_, r) => {
    const v = validatePackText(listPack(r));
    if (!v.ok) throw new Error(`list pack: ${v.issues[0]!.message}`);
    return v.value.rules[0]!;
  });
  const compileLists = () =>
    listRules.reduce((n, r) => {
      const l = lowerRule(r);
      return (
        n + (compileCondition(l.condition, { origin: 'lowered', skeleton: l.skeleton }).ok ? 1 : 0)
      );
    }, 0);
  assertions.push(must(compileLists() === 100, '100 rules of 1,000 values lower and compile'));
  const browser =
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
  const lastMatch = (op: ListOp) => {
    const p = load2(listPack(0, op));
    const { engine } = detectionEngine([p]);
    const last = `${listValue(op, 999)}0`;
    const ua =
      op === 'equals'
        ? last.toUpperCase()
        : op === 'contains'
          ? `${browser} ${last.toUpperCase()} extra`
          : op === 'startswith'
            ? `${last.toUpperCase()} ${browser}`
            : `${browser} ${last}`;
    assertions.push(
      must(
        engine.decide(uaEvent(ua)).findings.length === 1,
        `the last of 1,000 ${op} values matches`,
      ),
    );
    assertions.push(
      must(
        engine.decide(uaEvent(`${browser} scanner-1000/0.0`)).findings.length === 0,
        `a browser User-Agent does not match 1,000 ${op} values`,
      ),
    );
    const ev = uaEvent(ua);
    return () => engine.decide(ev).findings.length;
  };
  const listTasks: [string, () => number][] = [
    ['Last match of 1,000 equals values (case-insensitive)', lastMatch('equals')],
    ['Last match of 1,000 contains values (case-insensitive)', lastMatch('contains')],
    ['Last match of 1,000 startswith values (case-insensitive)', lastMatch('startswith')],
    ['Last match of 1,000 endswith values', lastMatch('endswith')],
  ];

  // Correlations: the rules decide each event once (findings kept), then the timed task feeds all
  // 100,000 events and their findings through a fresh engine of 100 correlations.
  const corrPack = load2(correlationBenchPack());
  const corrEvents = correlationBenchEvents();
  const { engine: corrRules } = detectionEngine([corrPack]);
  const corrFindings = corrEvents.map((e) => corrRules.decide(e).findings);
  assertions.push(
    must(
      corrFindings.every((f, k) => f.length === 1 && f[0]!.rule_id === `nx-zone-${k % ZONES}`),
      'each correlation bench event matches exactly its zone rule',
    ),
  );
  const perGroup = CORR_EVENTS / ZONES / GROUPS_PER_ZONE;
  // Each group resets when it fires: value_count (> 20) every 21 events, event_count (>= 50) every 50.
  const expectedFirings =
    (ZONES / 2) * GROUPS_PER_ZONE * (Math.floor(perGroup / 21) + Math.floor(perGroup / 50));
  const correlate = () => {
    const c = new CorrelationEngine([corrPack.pack]);
    let fired = 0;
    for (let k = 0; k < corrEvents.length; k++)
      fired += c.observe(corrEvents[k]!, corrFindings[k]!).length;
    return { fired, stats: c.stats() };
  };
  const once = correlate();
  assertions.push(
    must(
      once.fired === expectedFirings && once.stats.evictions === 0,
      '100 correlations over 100,000 events fire as computed',
      `${once.fired} findings, expected ${expectedFirings}; ${JSON.stringify(once.stats)}`,
    ),
  );
  const endToEnd = () => {
    const c = new CorrelationEngine([corrPack.pack]);
    let fired = 0;
    for (const e of corrEvents) fired += c.observe(e, corrRules.decide(e).findings).length;
    return fired;
  };
  assertions.push(
    must(endToEnd() === expectedFirings, 'decide + correlate gives the same findings'),
  );

  let sink = 0;
  const tasks: MicroTask[] = [
    {
      name: 'IR lower and compile 100 rules of 1,000 values',
      batch: 1,
      fn: () => void (sink += compileLists()),
    },
    ...listTasks.map(([name, f]): MicroTask => ({
      name,
      batch: 2000,
      fn: () => void (sink += f()),
    })),
    {
      name: 'IR parse+validate one pack',
      batch: 20,
      fn: () => void (sink += validatePackText(refText).ok ? 1 : 0),
    },
    {
      name: 'IR lower one rule',
      batch: 2000,
      fn: () => void (sink += lowerRule(refRule).condition.length),
    },
    {
      name: 'IR lower 100 rules',
      batch: 20,
      fn: () => void hundredRules.forEach((r) => (sink += lowerRule(r).condition.length)),
    },
    {
      name: 'IR lower and compile 100 rules',
      batch: 1,
      fn: () =>
        void hundredRules.forEach(
          (r) => (sink += compileCondition(lowerRule(r).condition).ok ? 1 : 0),
        ),
    },
    {
      name: 'Detection finding for the full policy',
      batch: 1000,
      fn: () => void (sink += fullEngine.decide(event).findings.length),
    },
    {
      name: 'Detection as last match across 100 rules',
      batch: 50,
      fn: () => void (sink += hundredEngine.decide(event).findings.length),
    },
    {
      name: 'Evidence signature of one event',
      batch: 200,
      fn: () => void (sink += evidenceSignature(event).length),
    },
    {
      name: 'Dedupe 100 rows / 100 signatures',
      batch: 20,
      fn: () => void (sink += dedupe(rows100).unique_evidence),
    },
    {
      name: 'Dedupe 1,000 rows / 100 signatures',
      batch: 5,
      fn: () => void (sink += dedupe(rows1000).unique_evidence),
    },
  ];
  const results = await runTasks(tasks);
  for (const t of tasks) results[`${t.name} (CPU time)`] = cpuTime(t);
  // One pass is 100,000 events (about a second of work in the end-to-end case): timed as whole
  // passes, wall and CPU time, outside tinybench's many-iteration sampling.
  const passes = (name: string, f: () => number, rounds = 7) => {
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      sink += f();
      wall.push(Number(process.hrtime.bigint() - t0) / 1000);
      const used = process.cpuUsage(c0);
      cpu.push(used.user + used.system);
    }
    results[name] = summarize(wall, 'us');
    results[`${name} (CPU time)`] = summarize(cpu, 'us');
  };
  passes('100 correlations over 100,000 events', () => correlate().fired);
  passes('100 rules + 100 correlations: decide and correlate 100,000 events', endToEnd, 3);
  assertions.push(must(sink > 0, 'tasks produced results', `${sink}`));
  assertions.push(...checkGoals(results, GOALS));
  // The same goals on CPU time, reported (not gated): on a shared machine they show the code's cost.
  for (const a of checkGoals(
    results,
    GOALS.map((g) => ({ ...g, result: `${g.result} (CPU time)` })),
  )) {
    assertions.push({
      ...a,
      ok: true,
      name: `info (CPU time, not gated): ${a.name.replace('goal: ', '')}`,
      detail: `${a.ok ? 'within' : 'over'} goal; ${a.detail}`,
    });
  }
  return writeArtifact({
    kind: 'micro',
    name: 'detection',
    results,
    assertions,
    notes: {
      packs: [
        'detection-ir/google-secret-egress.yaml',
        'test/fixtures/detection/hundred-rules.ir.yaml',
      ],
      event: 'test/fixtures/events/reference-http.json',
      dedupe: 'rows carry precomputed evidence signatures; signing is its own result',
      correlations:
        '100 dns.response rules and 100 correlations (50 value_count > 20, 50 event_count >= 50, group by parent domain, 60 s) over 100,000 events 10 µs apart in 1,000 groups; findings checked before timing',
    },
  });
}

await runIfMain(import.meta.url, run);
