import { describe, expect, it } from 'vitest';
import { detectionEngine } from '../../src/detection/install.js';
import { runPackTests } from '../../src/detection/pack-tests.js';
import { http, load, readRepo } from './helpers.js';

describe('the reference "Google secret egress" pack', () => {
  const pack = load(readRepo('detection-ir/google-secret-egress.yaml'));

  it('lowers to readable, fully parenthesised CEL', () => {
    expect(pack.rules[0]!.condition).toBe(
      '(((http.request.host == "googleapis.com") || http.request.host.endsWith(".googleapis.com")) && http.request.body.text.contains("token=secret"))',
    );
    expect(pack.rules[0]!.matched_fields).toEqual(['http.request.body.text', 'http.request.host']);
  });

  it('passes its own test cases', () => {
    const summary = runPackTests([pack]);
    expect(summary.results.filter((r) => !r.passed)).toEqual([]);
    expect(summary.passed).toBe(4);
  });

  it('produces a finding with severity, confidence, title, tags and matched fields, without deciding', () => {
    const { engine } = detectionEngine([pack]);
    const ev = http({ method: 'POST', host: 'oauth2.googleapis.com', body: 'a=1&token=secret' });
    const d = engine.decide(ev);
    expect(d.action).toBe('allow');
    expect(d.rule_id).toBeNull();
    expect(d.findings).toEqual([
      {
        event_id: ev.common.event_id,
        rule_id: 'google-secret-egress',
        pack_id: 'google-secret-egress',
        severity: 'high',
        confidence: 0.9,
        title: 'Secret token sent to googleapis.com',
        tags: ['attack.exfiltration'],
        matched_fields: ['http.request.body.text', 'http.request.host'],
      },
    ]);
  });
});
