/**
 * Correlations on live traffic: an EventSink wrapper that feeds every recorded decision's findings
 * to a CorrelationEngine and records the correlation findings it completes on the same event
 * (so the ledger stores them in `detection_findings` beside the rule findings, referencing the
 * completing event). It changes no verdict and adds nothing to the request path before the
 * decision is recorded. The set of correlations is swapped on reload (`replace`). No I/O itself.
 */
import type { Decision } from '../events/decision.js';
import type { DnsRow, EventSink, ExecRow, McpCallRow, NetRow } from '../events/sink.js';
import type { SecurityEvent } from '../events/types.js';
import { CorrelationEngine, DEFAULT_MAX_GROUPS, type CorrelationStats } from './correlate.js';
import type { IrPack } from './types.js';

export class CorrelatingSink implements EventSink {
  readonly engine: CorrelationEngine;

  constructor(
    private readonly inner: EventSink,
    maxGroups: number = DEFAULT_MAX_GROUPS,
  ) {
    this.engine = new CorrelationEngine([], maxGroups);
    if (inner.unavailable !== undefined) this.unavailable = () => inner.unavailable!();
  }

  unavailable?: () => string | null;

  /** Installs the correlations of these packs (start and every reload). */
  replace(packs: readonly Pick<IrPack, 'id' | 'correlations' | 'rules'>[]): void {
    this.engine.replace(packs);
  }

  stats(): CorrelationStats & { correlations: number } {
    return { ...this.engine.stats(), correlations: this.engine.size };
  }

  decision(event: SecurityEvent, decision: Decision): void {
    const found = this.engine.observe(event, decision.findings);
    // Findings of rules that only feed correlations (`generate: false`) are not recorded.
    const kept = this.engine.published(decision.findings);
    this.inner.decision(
      event,
      found.length === 0 && kept === decision.findings
        ? decision
        : { ...decision, findings: [...kept, ...found] },
    );
  }
  net(row: NetRow): void {
    this.inner.net(row);
  }
  dns(row: DnsRow): void {
    this.inner.dns(row);
  }
  mcp(row: McpCallRow): void {
    this.inner.mcp(row);
  }
  exec(row: ExecRow): void {
    this.inner.exec(row);
  }
}
