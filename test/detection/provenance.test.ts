/** A rule's provenance (`source`) survives Sigma import, validation, lowering output and findings output. */
import { describe, expect, it } from 'vitest';
import { loadPackText } from '../../src/detection/install.js';
import { formatLowered, formatRunReport } from '../../src/detection/report.js';
import { runDetections } from '../../src/detection/run.js';
import { importSigmaRule, sigmaPack } from '../../src/detection/sigma/import.js';
import { parseMapping } from '../../src/detection/sigma/mapping.js';
import { validatePackText } from '../../src/detection/validate.js';
import { http, packWith, readRepo } from './helpers.js';

const proxy = parseMapping(readRepo('detection-ir/mappings/sigma-web-proxy.yaml'));

const SIGMA = `title: Suspicious tool download
id: 6b7a4c2e-1f3d-4e5a-9b8c-0d1e2f3a4b5c
related:
  - id: 0e9f8a7b-6c5d-4e3f-2a1b-0c9d8e7f6a5b
    type: derived
status: test
description: A tool is fetched from a paste site.
references:
  - https://example.org/report
author: A. Analyst
date: 2023-01-31
modified: 2024/02/01
tags: [attack.command-and-control]
logsource:
  category: proxy
detection:
  selection:
    cs-host|endswith: .paste.example
  condition: selection
falsepositives:
  - Developers sharing snippets
level: medium
`;

describe('rule provenance', () => {
  it('keeps Sigma references, falsepositives, author, dates, logsource and related on the IR rule', async () => {
    if (!proxy.ok) throw new Error('mapping');
    const r = importSigmaRule(SIGMA, [proxy.value], 'rule.yml');
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const p = sigmaPack([r.value], { id: 'prov' });
    if (!p.ok) throw new Error(JSON.stringify(p.issues));
    const loaded = loadPackText(p.value.yaml);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    const source = loaded.value.rules[0]!.rule.source;
    expect(source).toEqual({
      kind: 'sigma',
      id: '6b7a4c2e-1f3d-4e5a-9b8c-0d1e2f3a4b5c',
      author: 'A. Analyst',
      date: '2023-01-31',
      modified: '2024/02/01',
      references: ['https://example.org/report'],
      falsepositives: ['Developers sharing snippets'],
      logsource: { category: 'proxy' },
      related: [{ id: '0e9f8a7b-6c5d-4e3f-2a1b-0c9d8e7f6a5b', type: 'derived' }],
    });
    expect(formatLowered([loaded.value])).toContain(
      '# sigma 6b7a4c2e-1f3d-4e5a-9b8c-0d1e2f3a4b5c by A. Analyst (2023-01-31, modified 2024/02/01); refs: https://example.org/report',
    );
    const report = await runDetections(
      [loaded.value],
      [{ event: http({ host: 'x.paste.example' }) }, { event: http({ host: 'other.example' }) }],
      'backtest',
    );
    expect(report.total_matches).toBe(1);
    expect(report.sources[loaded.value.rules[0]!.rule.id]).toEqual(source);
    expect(formatRunReport(report)).toContain('false positives: Developers sharing snippets');
  });

  it('refuses a malformed source with its path', () => {
    const v = validatePackText(
      packWith(
        { field: 'http.request.host', equals: ['a'] },
        { source: { kind: 'sigma', references: 'not a list', license: 'x' } },
      ),
    );
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['rules[0].source.references']),
    );
    expect(v.issues.some((i) => i.message.includes('license'))).toBe(true);
  });

  it('a hand-written rule without source stays without one', () => {
    const v = validatePackText(packWith({ field: 'http.request.host', equals: ['a'] }));
    expect(v.ok && v.value.rules[0]!.source).toBeUndefined();
  });
});
