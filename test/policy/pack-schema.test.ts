/**
 * The published JSON Schema for enforcement packs (rules/schema/celgate.pack.v1.schema.json) is
 * pinned to the loader: the same keys, enums and bounds, the shipped packs valid under both, and
 * the same packs refused by both.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SEVERITIES } from '../../src/events/decision.js';
import { parsePack } from '../../src/policy/packs.js';
import { MAX_RULES_PER_PACK, PACK_KEYS, RULE_KEYS } from '../../src/policy/rules.js';
import { MAX_CONDITION_LENGTH } from '../../src/policy/celenv.js';
import {
  MAX_PRIORITY,
  MIN_PRIORITY,
  RULE_ID_PATTERN,
  UNDECODABLE_BODY,
} from '../../src/policy/types.js';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');
const schema = JSON.parse(read('rules/schema/celgate.pack.v1.schema.json'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

describe('the enforcement pack JSON Schema', () => {
  it('names exactly the keys, enums and bounds the loader uses', () => {
    expect(Object.keys(schema.properties).sort()).toEqual([...PACK_KEYS].sort());
    expect(Object.keys(schema.$defs.rule.properties).sort()).toEqual([...RULE_KEYS].sort());
    const rule = schema.$defs.rule.properties;
    expect(rule.severity.enum).toEqual([...SEVERITIES]);
    expect(rule.undecodable_body.enum).toEqual([...UNDECODABLE_BODY]);
    expect([rule.priority.minimum, rule.priority.maximum]).toEqual([MIN_PRIORITY, MAX_PRIORITY]);
    expect(rule.condition.maxLength).toBe(MAX_CONDITION_LENGTH);
    expect(schema.properties.rules.maxItems).toBe(MAX_RULES_PER_PACK);
    expect(schema.$defs.id.pattern).toBe(RULE_ID_PATTERN.source);
  });

  it.each(['rules/balanced.yaml', 'rules/locked.yaml'])(
    'accepts %s, as the loader does',
    (file) => {
      const text = read(file);
      expect(parsePack(text, file).ok).toBe(true);
      expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
    },
  );

  const base = { id: 'p', version: '1', default_action: 'allow' };
  const rule = { id: 'r', condition: 'http.request.host == "a"', action: 'block' };
  it.each([
    ['no default_action', { id: 'p', version: '1', rules: [] }],
    ['no rules', base],
    ['an unknown pack key', { ...base, rules: [], extra: 1 }],
    ['an unknown rule key', { ...base, rules: [{ ...rule, when: 'x' }] }],
    ['a bad action', { ...base, rules: [{ ...rule, action: 'deny' }] }],
    ['a priority out of range', { ...base, rules: [{ ...rule, priority: 5000 }] }],
    ['an upper-case id', { ...base, rules: [{ ...rule, id: 'Rule' }] }],
    ['a bad severity', { ...base, rules: [{ ...rule, severity: 'urgent' }] }],
  ])('refuses %s, as the loader does', (_name, pack) => {
    expect(validate(pack)).toBe(false);
    expect(parsePack(JSON.stringify(pack), 'p.yaml').ok).toBe(false);
  });
});
