/**
 * The one error class of celgate. Every failure carries a stable string `code` so callers branch on
 * codes, never on messages. This module imports nothing from src/.
 */

export type ErrorCode =
  | 'E_CONFIG' // bad configuration or command-line input
  | 'E_RULE_COMPILE' // a CEL condition that does not parse, type-check or respect the field table
  | 'E_RULE_INVALID' // a rule or pack that violates the schema
  | 'E_RULE_NOT_FOUND' // a rule id the registry does not know
  | 'E_EVAL' // a rule threw while being evaluated (fails closed)
  | 'E_LIMIT' // a bound on guest-controlled input was exceeded
  | 'E_PARSE' // malformed protocol bytes
  | 'E_TLS' // TLS handshake or certificate failure
  | 'E_UPSTREAM' // the upstream could not be reached or misbehaved
  | 'E_DESTINATION' // a guest's request would connect to a special-purpose address (loopback, private, …)
  | 'E_TIMEOUT' // an operation took longer than its bound
  | 'E_LEDGER' // session.db could not be opened or written
  | 'E_IR_INVALID' // a Detection IR pack that violates the schema
  | 'E_SIGMA_UNSUPPORTED' // a Sigma construct the importer refuses to approximate
  | 'E_UNAVAILABLE' // a dependency (namespace support, a tool) is missing
  | 'E_FLEET' // the fleet's NATS servers could not be reached or refused an operation
  | 'E_INTERNAL'; // a bug: an invariant did not hold

export class CelgateError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CelgateError';
    this.code = code;
    this.details = options.details;
  }
}

export function isCelgateError(value: unknown, code?: ErrorCode): value is CelgateError {
  return value instanceof CelgateError && (code === undefined || value.code === code);
}

/** A problem found while validating user input: validation returns these, it does not throw. */
export interface Issue {
  /** File the problem is in, when there is one. */
  file?: string;
  /** 1-based line and column, when the input has lines. */
  line?: number;
  column?: number;
  /** Dotted path to the offending value, e.g. `rules[3].priority`. */
  path: string;
  message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; issues: Issue[] };

export function formatIssue(issue: Issue): string {
  const where = [issue.file, issue.line, issue.column].filter((x) => x !== undefined).join(':');
  const prefix = where === '' ? '' : `${where}: `;
  const path = issue.path === '' ? '' : `${issue.path}: `;
  return `${prefix}${path}${issue.message}`;
}
