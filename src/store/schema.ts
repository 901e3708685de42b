/**
 * session.db schema: versioned with `PRAGMA user_version` and applied by forward-only migrations.
 * Owns table definitions and opening the file with the right pragmas; it writes no rows itself.
 * Pure SQL over better-sqlite3; imports nothing from transport.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { CelgateError } from '../errors.js';

export type Db = Database.Database;

/** The policy columns every protocol row carries (DESIGN §8). */
const POLICY_COLUMNS = `
  event_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  decision TEXT NOT NULL,
  rule_id TEXT,
  reason TEXT NOT NULL,
  generation INTEGER NOT NULL,
  process_name TEXT NOT NULL`;

/** Forward migrations; index i migrates version i to i+1. Never edit a shipped entry, append one. */
export const MIGRATIONS: readonly string[] = [
  // 0 → 1: the tables of DESIGN §8.
  `
  CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    profile TEXT NOT NULL,
    celgate_version TEXT NOT NULL,
    config_json TEXT NOT NULL
  );
  CREATE TABLE security_events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    family TEXT NOT NULL,
    process_name TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule_id TEXT,
    reason TEXT NOT NULL,
    mode TEXT NOT NULL,
    generation INTEGER NOT NULL,
    eval_ns INTEGER NOT NULL,
    match_count INTEGER NOT NULL,
    errors_json TEXT NOT NULL,
    event_json TEXT NOT NULL
  );
  CREATE TABLE rule_matches (
    event_seq INTEGER NOT NULL REFERENCES security_events(seq),
    idx INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    mode TEXT NOT NULL,
    severity TEXT,
    decisive INTEGER NOT NULL,
    PRIMARY KEY (event_seq, idx)
  ) WITHOUT ROWID;
  CREATE INDEX rule_matches_rule ON rule_matches(rule_id, event_seq);
  CREATE TABLE detection_findings (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES security_events(seq),
    event_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    confidence REAL NOT NULL,
    title TEXT NOT NULL,
    tags_json TEXT NOT NULL,
    matched_fields_json TEXT NOT NULL
  );
  CREATE INDEX detection_findings_rule ON detection_findings(rule_id, seq);
  CREATE TABLE net_events (
    seq INTEGER PRIMARY KEY, ${POLICY_COLUMNS},
    scheme TEXT NOT NULL, method TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
    path TEXT NOT NULL, query TEXT NOT NULL, sni TEXT NOT NULL, host_header_mismatch TEXT NOT NULL,
    status INTEGER, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, duration_ms REAL NOT NULL,
    error TEXT
  );
  CREATE TABLE dns_events (
    seq INTEGER PRIMARY KEY, ${POLICY_COLUMNS},
    qname TEXT NOT NULL, qtype TEXT NOT NULL, transport TEXT NOT NULL, rcode TEXT NOT NULL,
    answers_json TEXT NOT NULL, upstream_ms REAL, cached INTEGER NOT NULL
  );
  CREATE TABLE mcp_calls (
    seq INTEGER PRIMARY KEY, ${POLICY_COLUMNS},
    direction TEXT NOT NULL, server_id TEXT NOT NULL, method TEXT NOT NULL, tool_name TEXT NOT NULL,
    request_id TEXT NOT NULL, args_digest TEXT NOT NULL, args_preview TEXT NOT NULL,
    is_error INTEGER NOT NULL, duration_ms REAL NOT NULL
  );
  CREATE TABLE exec_events (
    seq INTEGER PRIMARY KEY, ${POLICY_COLUMNS},
    executable TEXT NOT NULL, argv_json TEXT NOT NULL, command TEXT NOT NULL, cwd TEXT NOT NULL,
    command_class TEXT NOT NULL, exit_code INTEGER, duration_ms REAL NOT NULL
  );
  `,
  // 1 → 2: the low-cardinality facts of an event (session, process, type, decision, rule, reason,
  // mode, generation) and of a match (rule, pack, kind, action, mode, severity) are stored once in
  // `event_contexts` / `match_kinds` and referenced by integer from narrow append tables, so an
  // append binds 8 + 4 values instead of 16 + 9 (see docs/ledger.md). `security_events` and
  // `rule_matches` become views with the v1 columns, so every reader and query keeps working.
  `
  CREATE TABLE event_contexts (
    ref INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    process_name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    family TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule_id TEXT,
    reason TEXT NOT NULL,
    mode TEXT NOT NULL,
    generation INTEGER NOT NULL
  );
  CREATE TABLE event_rows (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    context INTEGER NOT NULL REFERENCES event_contexts(ref),
    eval_ns INTEGER NOT NULL,
    match_count INTEGER NOT NULL,
    errors_json TEXT NOT NULL,
    event_json TEXT NOT NULL
  );
  CREATE TABLE match_kinds (
    ref INTEGER PRIMARY KEY,
    rule_id TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    mode TEXT NOT NULL,
    severity TEXT
  );
  CREATE TABLE match_rows (
    event_seq INTEGER NOT NULL REFERENCES event_rows(seq),
    idx INTEGER NOT NULL,
    kind_ref INTEGER NOT NULL REFERENCES match_kinds(ref),
    decisive INTEGER NOT NULL,
    PRIMARY KEY (event_seq, idx)
  ) WITHOUT ROWID;
  CREATE INDEX match_rows_kind ON match_rows(kind_ref, event_seq);

  INSERT INTO event_contexts (session_id, process_name, event_type, family, decision, rule_id, reason, mode, generation)
    SELECT DISTINCT session_id, process_name, event_type, family, decision, rule_id, reason, mode, generation FROM security_events;
  INSERT INTO event_rows (seq, event_id, timestamp_ms, context, eval_ns, match_count, errors_json, event_json)
    SELECT s.seq, s.event_id, s.timestamp_ms, c.ref, s.eval_ns, s.match_count, s.errors_json, s.event_json
    FROM security_events s JOIN event_contexts c ON c.session_id = s.session_id AND c.process_name = s.process_name
      AND c.event_type = s.event_type AND c.family = s.family AND c.decision = s.decision AND c.rule_id IS s.rule_id
      AND c.reason = s.reason AND c.mode = s.mode AND c.generation = s.generation;
  INSERT INTO match_kinds (rule_id, pack_id, kind, action, mode, severity)
    SELECT DISTINCT rule_id, pack_id, kind, action, mode, severity FROM rule_matches;
  INSERT INTO match_rows (event_seq, idx, kind_ref, decisive)
    SELECT m.event_seq, m.idx, k.ref, m.decisive
    FROM rule_matches m JOIN match_kinds k ON k.rule_id = m.rule_id AND k.pack_id = m.pack_id AND k.kind = m.kind
      AND k.action = m.action AND k.mode = m.mode AND k.severity IS m.severity;

  -- detection_findings referenced security_events(seq): rebuild it to reference event_rows.
  CREATE TABLE detection_findings_v2 (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES event_rows(seq),
    event_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    confidence REAL NOT NULL,
    title TEXT NOT NULL,
    tags_json TEXT NOT NULL,
    matched_fields_json TEXT NOT NULL
  );
  INSERT INTO detection_findings_v2 SELECT * FROM detection_findings;
  DROP TABLE detection_findings;
  DROP TABLE rule_matches;
  DROP TABLE security_events;
  ALTER TABLE detection_findings_v2 RENAME TO detection_findings;
  CREATE INDEX detection_findings_rule ON detection_findings(rule_id, seq);

  -- CROSS JOIN keeps event_rows the outer loop: newest-first reads walk seq backwards.
  CREATE VIEW security_events AS
    SELECT e.seq, e.event_id, c.session_id, e.timestamp_ms, c.event_type, c.family, c.process_name, c.decision, c.rule_id,
      c.reason, c.mode, c.generation, e.eval_ns, e.match_count, e.errors_json, e.event_json
    FROM event_rows e CROSS JOIN event_contexts c ON c.ref = e.context;
  CREATE VIEW rule_matches AS
    SELECT m.event_seq, m.idx, k.rule_id, k.pack_id, k.kind, k.action, k.mode, k.severity, m.decisive
    FROM match_rows m JOIN match_kinds k ON k.ref = m.kind_ref;
  `,
  // 2 → 3: how far each table has been exported to the fleet event stream (src/fleet, docs/fleet.md):
  // the highest `seq` the stream has acknowledged. Written by the ledger writer only.
  `
  CREATE TABLE fleet_watermarks (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
  );
  `,
  // 3 → 4: how each request an `ask` rule held for a human approver was answered (docs/approvals.md):
  // the answer (allow, deny, timeout, overflow, closed), who gave it, and how long it took.
  `
  CREATE TABLE approvals (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL REFERENCES event_rows(seq),
    event_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    approval_id TEXT NOT NULL,
    rule_id TEXT,
    protocol TEXT NOT NULL,
    target TEXT NOT NULL,
    answer TEXT NOT NULL,
    answered_by TEXT,
    waited_ms INTEGER NOT NULL,
    remember TEXT NOT NULL
  );
  CREATE INDEX approvals_event ON approvals(event_id);
  `,
  // 4 → 5: which transport an MCP call came over: `vsock` (the framed MCP port, celgate the
  // server) or `https` (a remote MCP server reached through the HTTP pipeline, docs/mcp.md).
  `
  ALTER TABLE mcp_calls ADD COLUMN transport TEXT NOT NULL DEFAULT 'vsock';
  `,
  // 5 → 6: a correlation finding (docs/detection-ir.md, "Correlations") keeps its type, group,
  // count and contributing event ids as JSON; NULL for the finding of a single rule.
  `
  ALTER TABLE detection_findings ADD COLUMN correlation_json TEXT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Applies the missing migrations in one transaction each. Refuses a file from a newer celgate. */
export function migrate(db: Db): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new CelgateError(
      'E_LEDGER',
      `session.db has schema version ${current}, newer than this celgate (${SCHEMA_VERSION})`,
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return SCHEMA_VERSION;
}

/** Opens (creating if needed) a session.db for writing: WAL, NORMAL sync, migrated. */
export function openLedger(path: string): Db {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const db = new Database(path);
    // 16 KiB pages (new files only; ignored for an existing file): fewer page splits and WAL frames
    // per row for our wide rows.
    db.pragma('page_size = 16384');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    // 8 MiB of page cache: a batch of 8,192 typical events (~3 MiB of narrow v2 rows) fits without
    // spilling mid-transaction (a batch of large bodies spills to the WAL early, still correct).
    // Appends never re-read old pages, so a larger cache only touches fresh memory: 32 MiB cost
    // twice the page faults per 200,000-event run (12,900 vs 6,300) and ~20 % vs ~14 % system time.
    db.pragma('cache_size = -8192');
    // Statement journals (every multi-row INSERT keeps one, to undo a half-done statement) in
    // memory instead of a temp file: no pwrite per touched page. Crash safety is the WAL's, not
    // theirs; they only matter inside a live process. Measured +40–60 % appends per CPU second.
    db.pragma('temp_store = MEMORY');
    // Checkpoint (the only fsync in WAL + NORMAL, and a second copy of every page) every 128 MiB of
    // WAL (8,192 pages of 16 KiB) rather than every 4 MiB: measured ~25 % more appends/s than 32 MiB.
    // close() truncates the WAL.
    db.pragma('wal_autocheckpoint = 8192');
    migrate(db);
    return db;
  } catch (err) {
    if (err instanceof CelgateError) throw err;
    throw new CelgateError(
      'E_LEDGER',
      `cannot open session ledger ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Opens an existing session.db read-only (for readers, hunt, the CLI). */
export function openLedgerReadOnly(path: string): Db {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version === 0 || version > SCHEMA_VERSION) {
      db.close();
      throw new CelgateError(
        'E_LEDGER',
        `${path} is not a celgate session.db this version can read (schema ${version})`,
      );
    }
    return db;
  } catch (err) {
    if (err instanceof CelgateError) throw err;
    throw new CelgateError(
      'E_LEDGER',
      `cannot open session ledger ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
