/**
 * The DNS request path, independent of how the bytes arrived: parse → one `dns.request` event per
 * question → `decider.decide` → enforce (NXDOMAIN on block, SERVFAIL on engine error, FORMERR/NOTIMP
 * or drop on malformed input) → static answer, cache or upstream → record (`sink.decision` right
 * after deciding, `sink.dns` once the answer is known) → for an allowed question, one `dns.response`
 * event judged after the answer was handed back (detection only: the answer has already left). It
 * never decides by itself and never forwards a question the engine did not allow. Listeners
 * (service.ts) own the sockets.
 */
import type {
  Decider,
  Decision,
  DnsAnswerRecord,
  DnsRequestEvent,
  DnsTransport,
  EventOrigin,
  EventSink,
  Holding,
  SecurityEvent,
} from '../../events/index.js';
import {
  dnsRequestEvent,
  dnsResponseEvent,
  dnsResponseFacts,
  policyFields,
} from '../../events/index.js';
import { AnswerCache, cacheKey } from './cache.js';
import { MAX_INFLIGHT, RCODE, rcodeName } from './limits.js';
import { parseQuery, type DnsQuery } from './parse.js';
import {
  denialResponse,
  errorResponse,
  rewriteResponse,
  staticResponse,
  truncatedResponse,
  udpLimit,
} from './synth.js';
import type { UpstreamForwarder } from './upstream.js';
import type { DnsProblem } from './wire.js';
import { decideHeld, recordSafely } from '../../events/enforce.js';

/** Malformed DNS messages log at most one warning line per kind of problem per this many ms. */
export const MALFORMED_WARN_INTERVAL_MS = 10_000;

/** The subset of a pino logger this module uses. */
export interface DnsLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface DnsDeps {
  decider: Decider & Holding;
  sink: EventSink;
  log: DnsLog;
}

export interface ResolverOptions {
  origin: EventOrigin;
  /** Lower-case names without the trailing dot → addresses answered without asking upstream. */
  staticNames: ReadonlyMap<string, readonly string[]>;
  staticTtlS: number;
  cache: AnswerCache;
  forwarder: UpstreamForwarder;
  /** Milliseconds clock, injectable for cache tests. */
  now?: () => number;
}

export interface RequestContext {
  transport: DnsTransport;
  /** From the vsock `\0META` preamble, when present. */
  process_name?: string;
}

export interface DnsStats {
  queries: number;
  allowed: number;
  blocked: number;
  errors: number;
  cache_hits: number;
  static_answers: number;
  upstream_failures: number;
  shed: number;
  malformed: Partial<Record<DnsProblem, number>>;
}

export class DnsResolver {
  readonly stats: DnsStats = {
    queries: 0,
    allowed: 0,
    blocked: 0,
    errors: 0,
    cache_hits: 0,
    static_answers: 0,
    upstream_failures: 0,
    shed: 0,
    malformed: {},
  };
  private inflight = 0;
  private readonly now: () => number;

  constructor(
    private readonly options: ResolverOptions,
    private readonly deps: DnsDeps,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Per kind of problem: messages since its last warning line, and when the next may be written. */
  private readonly malformedWarn = new Map<string, { suppressed: number; nextMs: number }>();

  /**
   * At most one warning line per kind of problem per MALFORMED_WARN_INTERVAL_MS: a flood of bad
   * packets must not flood the log. A line says how many of its kind were not logged since the
   * previous one (all are counted in the stats).
   */
  private warnMalformed(
    fields: Record<string, unknown> & { dns_problem: string },
    msg: string,
  ): void {
    const now = this.now();
    const w = this.malformedWarn.get(fields.dns_problem) ?? { suppressed: 0, nextMs: 0 };
    this.malformedWarn.set(fields.dns_problem, w);
    if (now < w.nextMs) {
      w.suppressed++;
      return;
    }
    w.nextMs = now + MALFORMED_WARN_INTERVAL_MS;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.deps.log.warn(
      suppressed === 0 ? fields : { ...fields, not_logged_since_last: suppressed },
      msg,
    );
  }

  /** Answers one DNS message; null means drop it (no id to answer, or not a query). Never rejects. */
  async handle(bytes: Uint8Array, ctx: RequestContext): Promise<Buffer | null> {
    const parsed = parseQuery(bytes);
    if (!parsed.ok) {
      const e = parsed.error;
      this.stats.malformed[e.problem] = (this.stats.malformed[e.problem] ?? 0) + 1;
      const answer = e.rcode === null || e.id === null ? 'dropped' : rcodeName(e.rcode);
      this.warnMalformed(
        { dns_problem: e.problem, transport: ctx.transport, answer, bytes: bytes.length },
        `dns: malformed message: ${e.message}`,
      );
      return e.rcode === null || e.id === null
        ? null
        : errorResponse(e.id, e.flags, e.rcode, null, e.edns ?? null);
    }
    const query = parsed.query;
    if (this.inflight >= MAX_INFLIGHT) {
      this.stats.shed++;
      this.deps.log.warn(
        { transport: ctx.transport, inflight: this.inflight },
        'dns: too many queries in flight; answering SERVFAIL',
      );
      return denialResponse(query, RCODE.SERVFAIL);
    }
    this.inflight++;
    try {
      return await this.resolve(query, ctx);
    } finally {
      this.inflight--;
    }
  }

  private async resolve(query: DnsQuery, ctx: RequestContext): Promise<Buffer> {
    this.stats.queries++;
    const origin =
      ctx.process_name === undefined
        ? this.options.origin
        : { ...this.options.origin, process_name: ctx.process_name };
    // Every question is decided before anything goes upstream. Recording happens after the answer is
    // sent (DESIGN §2: enforce, then record), except that decisions are recorded before a forward.
    const records: (() => void)[] = [];
    let held = false;
    const judged = query.questions.map((q) => {
      const event = dnsRequestEvent(origin, {
        qname: q.qname,
        qtype: q.qtype,
        qclass: q.qclass,
        transport: ctx.transport,
      });
      const decision = decideHeld(this.deps, event);
      if (decision instanceof Promise) held = true;
      return { event, decision };
    });
    // A question an `ask` rule decided may be held for an approver (docs/approvals.md): the answer
    // waits for it.
    const decided: { event: DnsRequestEvent; decision: Decision }[] = held
      ? await Promise.all(judged.map(async (d) => ({ event: d.event, decision: await d.decision })))
      : (judged as { event: DnsRequestEvent; decision: Decision }[]);
    let worst = decided.some((d) => d.decision.action === 'error')
      ? 'error'
      : decided.some((d) => d.decision.action === 'block')
        ? 'block'
        : 'allow';
    if (worst === 'allow') {
      // Allowed decisions are recorded before any answer (upstream, cache or static): a ledger that
      // refuses them turns them into fail-closed errors, answered SERVFAIL.
      for (const d of decided) d.decision = recordSafely(this.deps, d.event, d.decision);
      if (decided.some((d) => d.decision.action !== 'allow')) worst = 'error';
    } else {
      for (const { event, decision } of decided)
        records.push(() => this.deps.sink.decision(event, decision));
    }

    let response: Buffer;
    let answers: string[] = [];
    let answerRecords: DnsAnswerRecord[] = [];
    let upstreamMs: number | null = null;
    let cached = false;
    if (worst === 'error') {
      this.stats.errors++;
      response = denialResponse(query, RCODE.SERVFAIL);
    } else if (worst === 'block') {
      this.stats.blocked++;
      response = denialResponse(query, RCODE.NXDOMAIN);
    } else {
      this.stats.allowed++;
      const r = await this.answerAllowed(query);
      ({ response, answers, upstreamMs, cached } = r);
      answerRecords = r.records;
    }
    if (ctx.transport === 'udp' && response.length > udpLimit(query))
      response = truncatedResponse(query);

    const rcode = rcodeName(response.readUInt16BE(2) & 0xf);
    for (const { event, decision } of decided) {
      const q = event.dns.request;
      records.push(() =>
        this.deps.sink.dns({
          ...policyFields(event, decision),
          qname: q.qname,
          qtype: q.qtype,
          transport: q.transport,
          rcode,
          answers,
          upstream_ms: upstreamMs,
          cached,
        }),
      );
    }
    if (worst === 'allow') {
      // The answer to every allowed question is an event of its own, judged once the answer has
      // been handed to the listener: detections (findings, correlations) see rcode and answers
      // without adding latency, and nothing on a dns.response is enforced.
      for (const { event } of decided) {
        records.push(() => {
          const q = event.dns.request;
          const facts = dnsResponseFacts(q, rcode, answerRecords, cached);
          const responseEvent = dnsResponseEvent(origin, q, facts);
          this.deps.sink.decision(responseEvent, detectionOnly(this.deps.decider, responseEvent));
        });
      }
    }
    setImmediate(() => this.flush(records));
    return response;
  }

  /** Runs pending sink writes; a sink failure is logged, never allowed to break the answer. */
  private flush(records: (() => void)[]): void {
    for (const write of records.splice(0)) {
      try {
        write();
      } catch (err) {
        this.deps.log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'dns: event sink failed',
        );
      }
    }
  }

  private async answerAllowed(query: DnsQuery): Promise<{
    response: Buffer;
    answers: string[];
    records: DnsAnswerRecord[];
    upstreamMs: number | null;
    cached: boolean;
  }> {
    // Zone transfers are multi-message TCP exchanges a recursive forwarder does not relay.
    if (query.questions.some((q) => q.typeCode === 251 || q.typeCode === 252)) {
      return {
        response: denialResponse(query, RCODE.REFUSED),
        answers: [],
        records: [],
        upstreamMs: null,
        cached: false,
      };
    }
    const single = query.questions.length === 1 ? query.questions[0]! : null;
    if (single !== null && (single.classCode === 1 || single.classCode === 255)) {
      const addresses = this.options.staticNames.get(single.qname);
      if (addresses !== undefined) {
        this.stats.static_answers++;
        const response = staticResponse(query, addresses, this.options.staticTtlS);
        return {
          response,
          answers: addresses.map((a) => (a.includes(':') ? `AAAA ${a}` : `A ${a}`)),
          records: addresses.map((a) => ({
            name: single.qname,
            type: a.includes(':') ? 'AAAA' : 'A',
            data: a,
            ttl: this.options.staticTtlS,
          })),
          upstreamMs: null,
          cached: false,
        };
      }
    }
    const key =
      single === null
        ? null
        : cacheKey(single.qname, single.typeCode, single.classCode, query.edns?.dnssecOk ?? false);
    if (key !== null) {
      const now = this.now();
      const hit = this.options.cache.get(key, now);
      if (hit !== null) {
        this.stats.cache_hits++;
        const elapsedS = Math.floor((now - hit.storedMs) / 1000);
        return {
          response: rewriteResponse(hit.bytes, query, hit.questionEnd, hit.ttlOffsets, elapsedS),
          answers: hit.answers,
          records: hit.records.map((r) => ({ ...r, ttl: Math.max(0, r.ttl - elapsedS) })),
          upstreamMs: null,
          cached: true,
        };
      }
    }
    const result = await this.options.forwarder.forward(query);
    if (!result.ok) {
      this.stats.upstream_failures++;
      this.deps.log.warn(
        { qname: query.questions[0]!.qname, reason: result.reason },
        'dns: upstream failed; answering SERVFAIL',
      );
      return {
        response: denialResponse(query, RCODE.SERVFAIL),
        answers: [],
        records: [],
        upstreamMs: result.ms,
        cached: false,
      };
    }
    const r = result.response;
    if (key !== null && r.cacheTtl !== null) {
      this.options.cache.set(
        key,
        {
          bytes: result.bytes,
          questionEnd: r.questionEnd,
          ttlOffsets: r.ttlOffsets,
          answers: r.answers,
          records: r.records,
          rcode: r.rcode,
        },
        r.cacheTtl,
        this.now(),
      );
    }
    return {
      response: rewriteResponse(result.bytes, query, r.questionEnd, r.ttlOffsets, 0),
      answers: r.answers,
      records: r.records,
      upstreamMs: result.ms,
      cached: false,
    };
  }
}

/**
 * Decides a dns.response event for the record. The answer has already been sent, so nothing is
 * enforced: a block rule that matches is kept as a match, and the recorded verdict says so.
 */
function detectionOnly(decider: Decider, event: SecurityEvent): Decision {
  let d: Decision;
  try {
    d = decider.decide(event);
  } catch (err) {
    return {
      action: 'error',
      rule_id: null,
      reason: `engine error on a dns.response (not enforced): ${err instanceof Error ? err.message : String(err)}`,
      mode: 'fail_closed',
      matches: [],
      findings: [],
      errors: [],
      generation: 0,
      eval_ns: 0,
    };
  }
  if (d.action !== 'block') return d;
  return {
    ...d,
    action: 'allow',
    reason: `not enforced (dns.response is judged after the answer was sent): ${d.reason}`,
  };
}
