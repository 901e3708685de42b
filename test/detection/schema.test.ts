import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PREDICATE_OPS } from '../../src/detection/types.js';
import {
  PACK_KEYS,
  PREDICATE_KEYS,
  RULE_KEYS,
  TEST_KEYS,
  validatePackText,
} from '../../src/detection/validate.js';
import { CORRELATION_KEYS } from '../../src/detection/correlation-validate.js';
import { CORRELATION_TYPES } from '../../src/detection/types.js';
import { SEVERITIES } from '../../src/events/decision.js';
import { EVENT_TYPES } from '../../src/events/types.js';
import { packWith, readRepo } from './helpers.js';

const schema = JSON.parse(readRepo('detection-ir/schema/celgate.detection-ir.v1.schema.json'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

describe('the published JSON Schema (detection-ir/schema/celgate.detection-ir.v1.schema.json)', () => {
  it('names exactly the keys, operators and enums the validator accepts', () => {
    expect(Object.keys(schema.properties).sort()).toEqual([...PACK_KEYS].sort());
    expect(Object.keys(schema.$defs.rule.properties).sort()).toEqual([...RULE_KEYS].sort());
    expect(Object.keys(schema.$defs.predicate.properties).sort()).toEqual(
      [...PREDICATE_KEYS].sort(),
    );
    expect(Object.keys(schema.$defs.test.properties).sort()).toEqual([...TEST_KEYS].sort());
    expect(schema.$defs.predicate.oneOf.map((o: { required: string[] }) => o.required[0])).toEqual([
      ...PREDICATE_OPS,
    ]);
    expect(schema.$defs.rule.properties.severity.enum).toEqual([...SEVERITIES]);
    expect(schema.$defs.rule.properties.event_type.enum).toEqual([...EVENT_TYPES]);
    expect(Object.keys(schema.$defs.correlation.properties).sort()).toEqual(
      [...CORRELATION_KEYS].sort(),
    );
    expect(schema.$defs.correlation.properties.type.enum).toEqual([...CORRELATION_TYPES]);
  });

  it.each([
    'detection-ir/google-secret-egress.yaml',
    'detection-ir/dns-tunnel-nxdomain.yaml',
    'test/fixtures/detection/hundred-rules.ir.yaml',
  ])('accepts %s, as the validator does', (file) => {
    const text = readRepo(file);
    expect(validatePackText(text).ok).toBe(true);
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each([
    ['an unknown predicate key', { field: 'http.request.host', equals: ['a'], nocase: true }],
    ['an empty value list', { field: 'http.request.host', contains: [] }],
    ['two operators', { field: 'http.request.host', equals: ['a'], contains: ['b'] }],
    ['no operator', { field: 'http.request.host' }],
    ['an empty all', { all: [] }],
  ])('rejects %s, as the validator does', (_name, match) => {
    const text = packWith(match);
    expect(validatePackText(text).ok).toBe(false);
    expect(validate(parse(text))).toBe(false);
  });
});
