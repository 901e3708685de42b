/**
 * The approval broker (docs/approvals.md): holds requests whose deciding rule says `ask` until a
 * human approver answers through the admin API (`GET /v1/approvals`, `POST /v1/approvals/:id`), or
 * until `approvals.timeout_ms` passes (then the request is blocked, "no answer"). At most
 * `approvals.max_pending` wait at once; beyond it an `ask` blocks at once. With no approver present
 * (nobody has polled the list within APPROVER_PRESENCE_MS and no long poll is open) an `ask` blocks
 * at once, as without approvals, unless `approvals.wait_without_approver` is set.
 *
 * Owns: the pending set, its bounds and timers, the answers and their counts. Must not: decide (the
 * engine did; this only turns an `ask` into allow or block) or touch sockets (the admin server does).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ApprovalAnswer, ApprovalRecord, Decision } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';
import { approvalTarget, type ApprovalTarget } from '../policy/approval-target.js';
import { HttpError, type Route } from './server.js';

export interface ApprovalsConfig {
  /** Most requests held at once; an `ask` beyond it blocks at once. */
  max_pending: number;
  /** How long a request is held for an answer; then it is blocked ("no answer"). */
  timeout_ms: number;
  /** Hold requests even while no approver is present (else an `ask` blocks at once). */
  wait_without_approver: boolean;
}

export const DEFAULT_APPROVALS: ApprovalsConfig = {
  max_pending: 64,
  timeout_ms: 30_000,
  wait_without_approver: false,
};

/** An approver counts as present this long after its last look at the pending list. */
export const APPROVER_PRESENCE_MS = 30_000;
/** Longest `GET /v1/approvals?wait=1` waits for something new before answering (empty). */
export const MAX_APPROVAL_WAIT_MS = 25_000;
/** Answered approvals remembered for a 409 on a second answer. */
const ANSWERED_KEPT = 1024;

export type ApprovalDecision = 'allow' | 'deny';
export type Remember = 'none' | 'session';

/** A pending approval as the admin API lists it. */
export interface ApprovalView {
  id: string;
  /** Increases with every held request; `after` in `?wait=1` takes the largest seen. */
  seq: number;
  protocol: ApprovalTarget['protocol'];
  target: string;
  detail: string;
  rule: string | null;
  reason: string;
  process_name: string;
  event_id: string;
  age_ms: number;
  timeout_ms: number;
}

export interface ApprovalCounts {
  /** Requests held for an answer. */
  asked: number;
  allowed: number;
  denied: number;
  timed_out: number;
  /** Blocked at once: `max_pending` requests were already held. */
  overflow: number;
  /** Blocked at once: no approver present. */
  no_approver: number;
}

/** The rule `remember: session` installs (src/control/policy-port.ts `putSessionRule`). */
export interface RememberedRule {
  id: string;
  condition: string;
  action: 'allow' | 'block';
  description: string;
  reason: string;
}

export interface ApprovalBrokerOptions {
  config: ApprovalsConfig;
  /** Installs a session rule; returns an error message, or null when it is in force. */
  remember?: (rule: RememberedRule) => string | null;
  /** The reason text of a rule, for the messages a held request ends with. */
  ruleReason?: (id: string) => string | undefined;
  /** Milliseconds clock (tests). */
  now?: () => number;
}

/** One request held under a pending approval. */
interface Waiter {
  decision: Decision;
  started: number;
  resolve: (d: Decision) => void;
}

/** A pending approval: identical requests (same key) held at once share it and its answer. */
interface Pending {
  view: Omit<ApprovalView, 'age_ms'>;
  target: ApprovalTarget;
  started: number;
  timer: NodeJS.Timeout;
  waiters: Waiter[];
}

export type AnswerResult =
  | {
      ok: true;
      id: string;
      decision: ApprovalDecision;
      remember: Remember;
      held: number;
      remembered: string | null;
      warning?: string;
    }
  | { ok: false; status: 404 | 409; message: string };

export class ApprovalBroker {
  readonly config: ApprovalsConfig;
  readonly counts: ApprovalCounts = {
    asked: 0,
    allowed: 0,
    denied: 0,
    timed_out: 0,
    overflow: 0,
    no_approver: 0,
  };
  readonly #pending = new Map<string, Pending>();
  readonly #answered = new Map<string, ApprovalAnswer>();
  readonly #waiters = new Set<() => void>();
  readonly #opts: ApprovalBrokerOptions;
  readonly #now: () => number;
  #seq = 0;
  /** Requests held now (every waiter of every pending approval). */
  #held = 0;
  #lastSeen = Number.NEGATIVE_INFINITY;
  #polling = 0;
  #closed = false;

  constructor(opts: ApprovalBrokerOptions) {
    this.#opts = opts;
    this.config = opts.config;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Whether someone answers: a long poll is open, or the list was read within the presence window. */
  approverPresent(): boolean {
    return this.#polling > 0 || this.#now() - this.#lastSeen < APPROVER_PRESENCE_MS;
  }

  /** Whether an `ask` would be held now rather than blocked at once (transports' `mayAsk`). */
  holding(): boolean {
    return !this.#closed && (this.config.wait_without_approver || this.approverPresent());
  }

  /** For /v1/health: requests held now, whether an approver is connected, and the bounds. */
  health(): {
    pending: number;
    approver_connected: boolean;
    max_pending: number;
    timeout_ms: number;
    wait_without_approver: boolean;
  } {
    return {
      pending: this.#held,
      approver_connected: this.approverPresent(),
      max_pending: this.config.max_pending,
      timeout_ms: this.config.timeout_ms,
      wait_without_approver: this.config.wait_without_approver,
    };
  }

  /** Requests held now (identical requests share one pending approval). */
  get pendingCount(): number {
    return this.#held;
  }

  /** The Holding.hold of the gateway's decider (src/events/decision.ts). */
  readonly hold = (
    event: SecurityEvent,
    decision: Decision,
  ): Promise<Decision> | Decision | undefined => {
    const target = approvalTarget(event);
    if (target === null || decision.ask !== true) return undefined;
    const rule = decision.rule_id ?? '';
    const why = this.#why(rule);
    if (!this.holding()) {
      this.counts.no_approver++;
      return {
        ...decision,
        reason: `Rule "${rule}" requires approval (${why}), and no approver is connected, so this is blocked.`,
      };
    }
    if (this.#held >= this.config.max_pending) {
      this.counts.overflow++;
      return {
        ...decision,
        reason: `Rule "${rule}" requires approval (${why}), and ${this.config.max_pending} requests already wait for an answer, so this is blocked.`,
        approval: {
          id: '',
          answer: 'overflow',
          by: null,
          waited_ms: 0,
          remember: 'none',
          protocol: target.protocol,
          target: target.target,
        },
      };
    }
    this.counts.asked++;
    this.#held++;
    const started = this.#now();
    return new Promise<Decision>((resolve) => {
      const waiter: Waiter = { decision, started, resolve };
      // An identical request already waiting (a client's retry, a second tab): one question.
      for (const p of this.#pending.values()) {
        if (p.target.key === target.key) {
          p.waiters.push(waiter);
          return;
        }
      }
      const id = randomUUID();
      const timer = setTimeout(
        () => this.#finish(id, 'timeout', null, 'none'),
        this.config.timeout_ms,
      );
      timer.unref();
      this.#pending.set(id, {
        view: {
          id,
          seq: ++this.#seq,
          protocol: target.protocol,
          target: target.target,
          detail: target.detail,
          rule: decision.rule_id,
          reason: why,
          process_name: event.common.process_name,
          event_id: event.common.event_id,
          timeout_ms: this.config.timeout_ms,
        },
        target,
        started,
        timer,
        waiters: [waiter],
      });
      for (const wake of [...this.#waiters]) wake();
    });
  };

  /** Resolves every request held under approval `id` with `answer`. */
  #finish(id: string, answer: ApprovalAnswer, by: string | null, remember: Remember): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    this.#answered.set(id, answer);
    if (this.#answered.size > ANSWERED_KEPT)
      this.#answered.delete(this.#answered.keys().next().value!);
    const now = this.#now();
    for (const w of p.waiters) {
      this.#held--;
      if (answer === 'allow') this.counts.allowed++;
      else if (answer === 'deny') this.counts.denied++;
      else if (answer === 'timeout') this.counts.timed_out++;
      const rule = w.decision.rule_id ?? '';
      w.resolve(
        this.#outcome(w.decision, rule, this.#why(rule), {
          id,
          answer,
          by,
          waited_ms: Math.round(now - w.started),
          remember,
          protocol: p.target.protocol,
          target: p.target.target,
        }),
      );
    }
  }

  #why(rule: string): string {
    return this.#opts.ruleReason?.(rule) || 'no reason given';
  }

  #outcome(decision: Decision, rule: string, why: string, approval: ApprovalRecord): Decision {
    const by = approval.by ?? 'nobody';
    switch (approval.answer) {
      case 'allow':
        return {
          ...decision,
          action: 'allow',
          reason: `Allowed by an approver (${by}) for rule "${rule}" (${why}).`,
          approval,
        };
      case 'deny':
        return {
          ...decision,
          reason: `Blocked by an approver (${by}) for rule "${rule}" (${why}).`,
          approval,
        };
      case 'timeout':
        return {
          ...decision,
          reason: `Rule "${rule}" requires approval (${why}), and no answer came within ${this.config.timeout_ms} ms, so this is blocked.`,
          approval,
        };
      default:
        return {
          ...decision,
          reason: `Rule "${rule}" requires approval (${why}), and the gateway stopped before an answer came, so this is blocked.`,
          approval,
        };
    }
  }

  /** The pending approvals, oldest first. Reading the list marks an approver present. */
  list(): ApprovalView[] {
    this.#lastSeen = this.#now();
    const now = this.#now();
    return [...this.#pending.values()].map((p) => ({
      ...p.view,
      age_ms: Math.round(now - p.started),
    }));
  }

  /** The largest seq handed out so far (pass it back as `after`). */
  cursor(): number {
    return this.#seq;
  }

  /**
   * Waits until a pending approval with seq > `after` exists (at once if one does), `maxMs` passes
   * or `signal` aborts. An open wait marks an approver present.
   */
  async wait(after: number, maxMs: number, signal?: AbortSignal): Promise<void> {
    const fresh = () => [...this.#pending.values()].some((p) => p.view.seq > after);
    if (fresh() || this.#closed) return;
    this.#polling++;
    try {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const wake = () => {
          if (fresh() || this.#closed) done();
        };
        const timer = setTimeout(done, maxMs);
        this.#waiters.add(wake);
        signal?.addEventListener('abort', done);
      });
    } finally {
      this.#polling--;
      this.#lastSeen = this.#now();
    }
  }

  /**
   * Answers a pending approval (every identical request held under it). `remember: session` also
   * installs an exact-match rule (allow or block) so identical requests are not asked again.
   */
  answer(id: string, decision: ApprovalDecision, remember: Remember, by: string): AnswerResult {
    this.#lastSeen = this.#now();
    const p = this.#pending.get(id);
    if (p === undefined) {
      const was = this.#answered.get(id);
      return was === undefined
        ? { ok: false, status: 404, message: `no pending approval "${id}"` }
        : { ok: false, status: 409, message: `approval "${id}" was already answered (${was})` };
    }
    let remembered: string | null = null;
    let warning: string | undefined;
    if (remember === 'session') {
      const ruleId = `approval.session.${createHash('sha256').update(p.target.key).digest('hex').slice(0, 16)}`;
      const action = decision === 'allow' ? 'allow' : 'block';
      const install = this.#opts.remember;
      const err =
        install === undefined
          ? 'remembering is not available'
          : install({
              id: ruleId,
              condition: p.target.condition,
              action,
              description: `Remembered approval: ${action} ${p.target.protocol} ${p.target.target}`,
              reason: `an approver (${by}) answered ${decision} for the rest of the session`,
            });
      if (err === null) remembered = ruleId;
      else warning = `the answer applies, but it is not remembered: ${err}`;
    }
    const held = p.waiters.length;
    this.#finish(id, decision, by, remember);
    return {
      ok: true,
      id,
      decision,
      remember,
      held,
      remembered,
      ...(warning === undefined ? {} : { warning }),
    };
  }

  /** Blocks every held request ("the gateway stopped") and wakes every waiter. */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#pending.keys()]) this.#finish(id, 'closed', null, 'none');
    for (const wake of [...this.#waiters]) wake();
  }
}

const DECISIONS: readonly ApprovalDecision[] = ['allow', 'deny'];
const REMEMBER: readonly Remember[] = ['none', 'session'];

/** Who is answering, as the control server names the peer (`RouteRequest.peer`). */
function peerOf(req: { peer?: string }): string {
  return req.peer ?? 'control-socket';
}

/** The admin API routes of the broker: list (and long-poll) and answer. */
export function approvalRoutes(broker: ApprovalBroker): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/approvals',
      handler: async (req) => {
        const wait = req.query.get('wait');
        if (wait !== null && wait !== '0' && wait !== '') {
          const afterRaw = req.query.get('after');
          const after = afterRaw === null ? 0 : Number(afterRaw);
          if (!Number.isInteger(after) || after < 0)
            throw new HttpError(400, 'E_CONFIG', 'after must be a whole number ≥ 0');
          const msRaw = req.query.get('timeout_ms');
          const ms = msRaw === null ? MAX_APPROVAL_WAIT_MS : Number(msRaw);
          if (!Number.isInteger(ms) || ms < 0)
            throw new HttpError(400, 'E_CONFIG', 'timeout_ms must be a whole number ≥ 0');
          await broker.wait(after, Math.min(ms, MAX_APPROVAL_WAIT_MS), req.signal);
        }
        return {
          json: {
            approvals: broker.list(),
            cursor: broker.cursor(),
            max_pending: broker.config.max_pending,
            timeout_ms: broker.config.timeout_ms,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/approvals/:id',
      handler: (req) => {
        const body = req.body as { decision?: unknown; remember?: unknown } | undefined;
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new HttpError(400, 'E_CONFIG', 'the body must be {"decision": "allow" | "deny"}');
        const extra = Object.keys(body).filter((k) => k !== 'decision' && k !== 'remember');
        if (extra.length > 0)
          throw new HttpError(
            400,
            'E_CONFIG',
            `unknown field "${extra[0]}" (known: decision, remember)`,
          );
        if (!DECISIONS.includes(body.decision as ApprovalDecision))
          throw new HttpError(400, 'E_CONFIG', 'decision must be "allow" or "deny"');
        const remember = body.remember ?? 'none';
        if (!REMEMBER.includes(remember as Remember))
          throw new HttpError(400, 'E_CONFIG', 'remember must be "none" or "session"');
        const out = broker.answer(
          req.params.id ?? '',
          body.decision as ApprovalDecision,
          remember as Remember,
          peerOf(req),
        );
        if (!out.ok)
          throw new HttpError(
            out.status,
            out.status === 404 ? 'E_NOT_FOUND' : 'E_CONFLICT',
            out.message,
          );
        const { ok: _ok, ...rest } = out;
        return { json: rest };
      },
    },
  ];
}
