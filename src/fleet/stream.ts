/**
 * The event stream's definition, created by the first gateway (or CLI) that needs it and verified
 * by the others: every subject under `celgate.events.>`, file storage, de-duplication by message
 * id within the configured window.
 */
import { nanos } from '@nats-io/transport-node';
import { StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { SUBJECT_ROOT } from './names.js';

export interface StreamSpec {
  name: string;
  replicas: number;
  duplicateWindowS: number;
}

export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  const subjects = [`${SUBJECT_ROOT}.>`];
  try {
    const info = await jsm.streams.info(spec.name);
    const want = nanos(spec.duplicateWindowS * 1000);
    if (info.config.duplicate_window < want)
      await jsm.streams.update(spec.name, { ...info.config, duplicate_window: want });
    return;
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw err;
  }
  try {
    await jsm.streams.add({
      name: spec.name,
      subjects,
      storage: StorageType.File,
      num_replicas: spec.replicas,
      duplicate_window: nanos(spec.duplicateWindowS * 1000),
    });
  } catch (err) {
    // Another gateway created it between our look and our add.
    if (!/already in use|exists/i.test((err as Error).message)) throw err;
  }
}
