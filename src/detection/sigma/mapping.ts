/**
 * Sigma field mappings (`detection-ir/mappings/*.yaml`): which Sigma logsource a mapping covers, the
 * celgate event type it produces, and Sigma field name → contract field (optionally derived, e.g.
 * `c-uri-extension` from the path). Validated against the field table; never throws on input.
 * Pure; no I/O.
 */
import { EVENT_TYPES, type EventType } from '../../events/types.js';
import type { Issue, Validated } from '../../errors.js';
import { resolveField } from '../fields.js';
import { parseSource } from '../source.js';
import type { FieldTarget } from './values.js';

export const MAPPING_SCHEMA = 'celgate.sigma-mapping/v1';
const LOGSOURCE_KEYS = ['category', 'product', 'service'] as const;

export interface SigmaMapping {
  id: string;
  description: string;
  /** Every key given must equal the rule's logsource value. */
  logsource: Partial<Record<(typeof LOGSOURCE_KEYS)[number], string>>;
  event_type: EventType;
  fields: Record<string, FieldTarget & { source: string }>;
  file?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseMapping(text: string, file?: string): Validated<SigmaMapping> {
  const parsed = parseSource(text, file);
  if (!parsed.ok) return parsed;
  const { value, lineOf } = parsed.doc;
  const issues: Issue[] = [];
  const add = (path: (string | number)[], message: string) => {
    const line = lineOf(path);
    issues.push({
      ...(file === undefined ? {} : { file }),
      ...(line === undefined ? {} : { line }),
      path: path.join('.'),
      message,
    });
  };
  if (!isObj(value))
    return {
      ok: false,
      issues: [
        {
          ...(file === undefined ? {} : { file }),
          path: '',
          message: 'a mapping must be a YAML mapping',
        },
      ],
    };
  for (const k of Object.keys(value))
    if (!['schema', 'id', 'description', 'logsource', 'event_type', 'fields'].includes(k))
      add([k], `unknown key "${k}"`);
  if (value.schema !== MAPPING_SCHEMA) add(['schema'], `"schema" must be "${MAPPING_SCHEMA}"`);
  const id =
    typeof value.id === 'string' && value.id !== ''
      ? value.id
      : (add(['id'], '"id" is required'), '');
  const eventType = EVENT_TYPES.includes(value.event_type as EventType)
    ? (value.event_type as EventType)
    : (add(['event_type'], `"event_type" must be one of ${EVENT_TYPES.join(', ')}`), undefined);
  const logsource: SigmaMapping['logsource'] = {};
  if (!isObj(value.logsource) || Object.keys(value.logsource).length === 0)
    add(['logsource'], '"logsource" must name at least one of category, product, service');
  else
    for (const [k, v] of Object.entries(value.logsource)) {
      if (!(LOGSOURCE_KEYS as readonly string[]).includes(k) || typeof v !== 'string')
        add(['logsource', k], `logsource keys are ${LOGSOURCE_KEYS.join(', ')} with string values`);
      else logsource[k as (typeof LOGSOURCE_KEYS)[number]] = v;
    }
  const fields: SigmaMapping['fields'] = {};
  if (!isObj(value.fields))
    add(['fields'], '"fields" must map Sigma field names to contract fields');
  else if (eventType !== undefined) {
    for (const [name, target] of Object.entries(value.fields)) {
      const spec =
        typeof target === 'string' ? { field: target } : isObj(target) ? target : undefined;
      const field = spec?.field;
      const transform = spec?.transform ?? null;
      if (typeof field !== 'string') {
        add(['fields', name], 'must be a contract field path, or {field, transform}');
        continue;
      }
      if (transform !== null && transform !== 'extension' && transform !== 'uri') {
        add(['fields', name, 'transform'], 'transforms are "extension" and "uri"');
        continue;
      }
      // Response-side fields of a request mapping (sc-status on http.request, answer on
      // dns.request): rules that use them import as response rules, whose events carry the request
      // too (import.ts).
      const res = resolveField(field, responseSide(eventType, field) ?? eventType);
      if (!res.ok) {
        add(['fields', name], res.message);
        continue;
      }
      const type = res.field.kind === 'field' ? res.field.type : 'string';
      if (type !== 'string' && type !== 'int' && type !== 'bool' && type !== 'list<string>') {
        add(['fields', name], `${field} is a ${type}`);
        continue;
      }
      if (transform !== null && type !== 'string')
        add(['fields', name], `the ${String(transform)} transform needs a string field`);
      fields[name] = { source: name, field, type, transform, header: res.field.kind === 'header' };
    }
  }
  if (issues.length > 0 || eventType === undefined) return { ok: false, issues };
  const mapping: SigmaMapping = {
    id,
    description: typeof value.description === 'string' ? value.description : '',
    logsource,
    event_type: eventType,
    fields,
  };
  if (file !== undefined) mapping.file = file;
  return { ok: true, value: mapping };
}

/**
 * The response event type a request mapping's field belongs to (http.response for
 * `http.response.*` on http.request, dns.response for `dns.response.*` on dns.request), or null.
 */
export function responseSide(eventType: EventType, field: string): EventType | null {
  if (eventType === 'http.request' && field.startsWith('http.response.')) return 'http.response';
  if (eventType === 'dns.request' && field.startsWith('dns.response.')) return 'dns.response';
  return null;
}

/** Whether a mapping covers a Sigma rule's logsource. */
export function mappingCovers(mapping: SigmaMapping, logsource: Obj): boolean {
  return Object.entries(mapping.logsource).every(([k, v]) => logsource[k] === v);
}
