/**
 * Sigma refusals are one line: E_SIGMA_UNSUPPORTED, the construct named, the line of the Sigma file
 * where it is, and never the generated CEL. Large value lists import (issue #21: a real rule with
 * 106 User-Agent values could not).
 */
import { describe, expect, it } from 'vitest';
import { detectionEngine, loadPackText } from '../../src/detection/install.js';
import { importSigmaRule, sigmaPack } from '../../src/detection/sigma/import.js';
import { parseMapping, type SigmaMapping } from '../../src/detection/sigma/mapping.js';
import { http, readRepo } from './helpers.js';

const MAPPINGS: SigmaMapping[] = [
  'detection-ir/mappings/sigma-web-proxy.yaml',
  'detection-ir/mappings/sigma-dns.yaml',
].map((p) => {
  const m = parseMapping(readRepo(p), p);
  if (!m.ok) throw new Error(JSON.stringify(m.issues));
  return m.value;
});

function proxyRule(selection: string): string {
  return [
    'title: test rule',
    'id: 3c1a6b59-0d8c-4c1b-9d55-2f7b0c2f1a10',
    'status: test',
    'logsource:',
    '  category: proxy',
    'detection:',
    selection,
    '  condition: selection',
    'level: high',
    '',
  ].join('\n');
}

function refusal(text: string) {
  const r = importSigmaRule(text, MAPPINGS, 'rule.yml');
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('imported');
  const i = r.issues[0]!;
  const line = `rule.yml:${i.line}: ${i.code}: ${i.message}`;
  expect(line).not.toContain('\n');
  expect(line.length).toBeLessThan(300);
  return { ...i, line };
}

describe('Sigma refusals', () => {
  it('names an unsupported modifier and the line of its field, in a list selection too', () => {
    const r = refusal(
      proxyRule(
        [
          '  selection:',
          '    - c-uri|contains: /a',
          '    - cs-host: x.com',
          '      c-uri|base64offset|contains: abc',
        ].join('\n'),
      ),
    );
    expect(r.code).toBe('E_SIGMA_UNSUPPORTED');
    expect(r.message).toContain('"base64offset"');
    expect(r.line).toMatch(/^rule\.yml:10: /);
  });

  it('points at the offending value of a list and names the field', () => {
    const r = refusal(
      proxyRule(['  selection:', '    c-uri|re:', '      - ^/ok', '      - (?<=x)y'].join('\n')),
    );
    expect(r.message).toContain('look-behind');
    expect(r.line).toMatch(/^rule\.yml:10: E_SIGMA_UNSUPPORTED: /);
  });

  it('refuses a list longer than the IR takes, at its field, in one short line', () => {
    const values = Array.from({ length: 1001 }, (_, i) => `      - agent-${i}`);
    const r = refusal(proxyRule(['  selection:', '    c-useragent:', ...values].join('\n')));
    expect(r.message).toContain('1001 values');
    expect(r.line).toMatch(/^rule\.yml:8: /);
  });

  it('keeps refusals of long logsources to one line under 300 characters', () => {
    const text = proxyRule('  selection:\n    cs-host: x.com').replace(
      '  category: proxy',
      `  category: ${'x'.repeat(400)}`,
    );
    expect(refusal(text).message).toMatch(/\.\.\.$/);
  });

  it('imports a rule with 106 User-Agent values and matches the last one, case-insensitively', () => {
    const values = Array.from(
      { length: 106 },
      (_, i) => `      - 'Mozilla/5.0 (Windows NT 6.1; Tool-${i}) like Gecko'`,
    );
    const r = importSigmaRule(
      proxyRule(['  selection:', '    c-useragent:', ...values].join('\n')),
      MAPPINGS,
      'rule.yml',
    );
    expect(r.ok ? 'ok' : r.issues).toBe('ok');
    if (!r.ok) return;
    const p = sigmaPack([r.value], { id: 'ua' });
    const loaded = p.ok ? loadPackText(p.value.yaml) : p;
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    const { engine } = detectionEngine([loaded.value]);
    expect(
      engine.decide(
        http({ headers: { 'user-agent': 'mozilla/5.0 (windows nt 6.1; tool-105) like gecko' } }),
      ).findings,
    ).toHaveLength(1);
    expect(
      engine.decide(
        http({ headers: { 'user-agent': 'Mozilla/5.0 (Windows NT 6.1; Tool-106) like Gecko' } }),
      ).findings,
    ).toHaveLength(0);
  });
});
