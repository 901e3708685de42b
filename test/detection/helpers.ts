/** Shared helpers for detection tests and benches: build packs and events from compact data. */
import { readFileSync } from 'node:fs';
import { eventFromJson } from '../../src/events/build.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { loadPackText, type LoadedPack } from '../../src/detection/install.js';
import { stringify } from 'yaml';

export const ROOT = new URL('../..', import.meta.url).pathname;

export function readRepo(path: string): string {
  return readFileSync(`${ROOT}${path}`, 'utf8');
}

/** A one-rule pack around a match tree. */
export function packWith(match: unknown, rule: Record<string, unknown> = {}): string {
  return stringify({
    schema: 'celgate.detection-ir/v1',
    id: 'test-pack',
    version: '1',
    status: 'active',
    owner: 'tests',
    rules: [
      {
        id: 'r1',
        title: 'test rule',
        event_type: 'http.request',
        severity: 'medium',
        confidence: 0.5,
        tags: ['t'],
        match,
        ...rule,
      },
    ],
  });
}

export function load(text: string): LoadedPack {
  const r = loadPackText(text);
  if (!r.ok) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

export function event(json: Record<string, unknown>): SecurityEvent {
  const r = eventFromJson(json, { session_id: 's-test' });
  if (!r.ok) throw new Error(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.value;
}

export function http(
  request: Record<string, unknown>,
  common: Record<string, unknown> = {},
): SecurityEvent {
  return event({
    common: { event_type: 'http.request', ...common },
    http: { request: { host: 'example.com', path: '/', ...request } },
  });
}
