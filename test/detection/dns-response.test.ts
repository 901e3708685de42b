/**
 * Detection IR on dns.response events: rules that read only the question still run on exactly the
 * response events, answer lists match element-wise, the record list is CEL-only, and the answers
 * are readable in both evaluators.
 */
import { describe, expect, it } from 'vitest';
import { detectionEngine, loadPackText } from '../../src/detection/install.js';
import { compileCondition } from '../../src/policy/compile.js';
import { celContext, CEL_ENV } from '../../src/policy/celenv.js';
import { project } from '../../src/policy/projection.js';
import { event, load, packWith } from './helpers.js';

const answer = (qname: string, data: string, type = 'TXT') =>
  event({
    common: { event_type: 'dns.response' },
    dns: {
      request: { qname, qtype: type },
      response: { rcode: 'NOERROR', answers: [{ name: qname, type, data, ttl: 30 }] },
    },
  });
const question = (qname: string) =>
  event({ common: { event_type: 'dns.request' }, dns: { request: { qname } } });

describe('dns.response rules', () => {
  it('a rule reading only the question runs on responses, not on the requests', () => {
    const pack = load(
      packWith(
        { field: 'dns.request.qname', endswith: ['.evil.test'] },
        { event_type: 'dns.response' },
      ),
    );
    const { engine } = detectionEngine([pack]);
    expect(engine.decide(answer('a.evil.test', '"x"')).findings).toHaveLength(1);
    expect(engine.decide(question('a.evil.test')).findings).toHaveLength(0);
  });

  it('answer_data and answer_types match element-wise', () => {
    const pack = load(
      packWith(
        {
          all: [
            { field: 'dns.response.answer_types', equals: ['TXT'] },
            { field: 'dns.response.answer_data', contains: ['iex'], case_insensitive: true },
          ],
        },
        { event_type: 'dns.response' },
      ),
    );
    const { engine } = detectionEngine([pack]);
    expect(
      engine.decide(answer('c.test', '"IEX (New-Object Net.WebClient)"')).findings,
    ).toHaveLength(1);
    expect(engine.decide(answer('c.test', '"v=spf1 -all"')).findings).toHaveLength(0);
    expect(engine.decide(answer('c.test', '192.0.2.1', 'A')).findings).toHaveLength(0);
  });

  it('refuses a predicate on the record list, naming the list fields to use', () => {
    const r = loadPackText(
      packWith({ field: 'dns.response.answers', contains: ['x'] }, { event_type: 'dns.response' }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]!.message).toMatch(/answer_data.*answer_types/);
  });

  it('reads the records in CEL, in both evaluators', () => {
    const text =
      'dns.response.answers.exists(a, a.type == "TXT" && a.data.contains("IEX") && a.ttl < 60)';
    const c = compileCondition(text);
    expect(c.ok).toBe(true);
    if (!c.ok) return;
    const hit = answer('c.test', '"IEX x"');
    const miss = answer('c.test', '"nothing"');
    expect(c.condition.program(project(hit))).toBe(true);
    expect(c.condition.program(project(miss))).toBe(false);
    expect(CEL_ENV.parse(text)(celContext(hit))).toBe(true);
    expect(CEL_ENV.parse(text)(celContext(miss))).toBe(false);
  });
});
