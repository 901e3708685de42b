/**
 * The live report's worker thread (docs/report.md): answers each request with the session's
 * ReportData from its own read-only connection to session.db, so the aggregation — about a second
 * for a 100,000-event session — never runs on the gateway's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { reportData } from '../store/report-data.js';
import { openLedgerReadOnly } from '../store/schema.js';

const db = openLedgerReadOnly((workerData as { sessionDb: string }).sessionDb);
parentPort!.on('message', (m: { id: number }) => {
  try {
    parentPort!.postMessage({ id: m.id, data: reportData(db) });
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});
