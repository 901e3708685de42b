/**
 * The session report page (docs/report.md): one self-contained HTML document — styles, the data
 * (ReportData as JSON) and a small renderer with inline SVG charts, no external resource of any
 * kind — written by `celgate report` and served live at `GET /ui/` by the admin API, where it
 * fetches `data.json` from the same place every few seconds.
 *
 * Owns: presentation. Must not: query the ledger (src/store/report-data.ts does).
 */
import type { ReportData } from '../store/report-data.js';
import { LATENCY_BUCKETS_US } from '../store/report-data.js';

/** How often the live page (`/ui/`) refreshes its data. */
export const LIVE_REFRESH_MS = 5000;

/** JSON safe inside a <script> element (no `</script>`, no HTML comment openers). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const STYLE = `
:root{--allow:#2e7d32;--block:#c62828;--error:#ef6c00;--fg:#1b1f24;--muted:#5f6b7a;--line:#d8dee6;--bg:#fff;--card:#f6f8fa}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 24px;border-bottom:1px solid var(--line)}h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
main{padding:0 24px 40px;max-width:1400px}.muted{color:var(--muted)}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 14px;min-width:120px}.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--card);position:sticky;top:0}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.allow{color:var(--allow)}.block{color:var(--block)}.error{color:var(--error)}.sev-critical,.sev-high{color:var(--block);font-weight:600}.sev-medium{color:var(--error)}
.scroll{max-height:420px;overflow:auto;border:1px solid var(--line);border-radius:6px}input[type=search]{padding:5px 8px;width:320px;margin:0 0 8px;border:1px solid var(--line);border-radius:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}svg text{font-size:11px;fill:var(--muted)}code{font-size:12px}
`;

/** The renderer, run in the page: builds every section from the embedded (or fetched) data. */
const SCRIPT = `
const SHOWN = 300;
const BUCKETS = ${JSON.stringify(LATENCY_BUCKETS_US.map((b) => (b === Infinity ? null : b)))};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const fmtT = (ms) => (ms == null ? '–' : new Date(ms).toISOString().replace('T', ' ').replace('Z', ''));
const num = (n) => Number(n ?? 0).toLocaleString('en');
function table(cols, rows) {
  return '<table><thead><tr>' + cols.map((c) => '<th' + (c.num ? ' class="num"' : '') + '>' + esc(c.h) + '</th>').join('') + '</tr></thead><tbody>' +
    rows.map((r) => '<tr>' + cols.map((c) => '<td' + (c.num ? ' class="num"' : '') + (c.cls ? ' class="' + c.cls(r) + '"' : '') + '>' + (c.html ? c.f(r) : esc(c.f(r))) + '</td>').join('') + '</tr>').join('') + '</tbody></table>';
}
function stacked(points, w, h) {
  if (points.length === 0) return '<p class="muted">No events.</p>';
  const max = Math.max(1, ...points.map((p) => p.allow + p.block + p.error));
  const bw = Math.max(1, (w - 40) / points.length);
  let bars = '';
  points.forEach((p, i) => {
    let y = h - 20;
    for (const k of ['allow', 'block', 'error']) {
      const bh = (p[k] / max) * (h - 30);
      if (bh > 0) { y -= bh; bars += '<rect x="' + (40 + i * bw).toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + Math.max(0.5, bw - 0.5).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="var(--' + k + ')"><title>' + fmtT(p.t_ms) + ' ' + k + ' ' + p[k] + '</title></rect>'; }
    }
  });
  return '<svg role="img" aria-label="events per step by decision" width="100%" viewBox="0 0 ' + w + ' ' + h + '"><text x="0" y="12">' + num(max) + '</text><text x="0" y="' + (h - 22) + '">0</text>' + bars +
    '<text x="40" y="' + (h - 4) + '">' + esc(fmtT(points[0].t_ms)) + '</text><text x="' + (w - 4) + '" y="' + (h - 4) + '" text-anchor="end">' + esc(fmtT(points[points.length - 1].t_ms)) + '</text></svg>';
}
function histogram(l, w, h) {
  const max = Math.max(1, ...l.buckets);
  const bw = (w - 10) / l.buckets.length;
  return '<svg role="img" aria-label="decision latency histogram" width="100%" viewBox="0 0 ' + w + ' ' + h + '">' + l.buckets.map((c, i) => {
    const bh = (c / max) * (h - 34);
    const label = BUCKETS[i] == null ? '>' + BUCKETS[i - 1] : '≤' + BUCKETS[i];
    return '<rect x="' + (5 + i * bw).toFixed(1) + '" y="' + (h - 20 - bh).toFixed(1) + '" width="' + (bw - 2).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="#5c7cfa"><title>' + label + ' µs: ' + c + '</title></rect><text x="' + (5 + i * bw + bw / 2).toFixed(1) + '" y="' + (h - 6) + '" text-anchor="middle">' + label + '</text>';
  }).join('') + '</svg>';
}
function render(d) {
  const s = d.session;
  $('title').textContent = 'celgate session ' + s.session_id;
  $('meta').innerHTML = 'profile <b>' + esc(s.profile) + '</b> · celgate ' + esc(s.celgate_version) + ' · started ' + esc(fmtT(s.started_ms)) + ' · ' + (s.ended_ms == null ? 'running' : 'ended ' + esc(fmtT(s.ended_ms))) + ' · report ' + esc(fmtT(d.generated_ms));
  $('totals').innerHTML = [['events', d.totals.events, ''], ['allowed', d.totals.allow, 'allow'], ['blocked', d.totals.block, 'block'], ['errors', d.totals.error, 'error']]
    .map(([k, v, c]) => '<div class="card"><span class="muted">' + k + '</span><b class="' + c + '" data-count="' + k + '">' + num(v) + '</b></div>').join('');
  $('protocols').innerHTML = table([{ h: 'protocol', f: (r) => r.family }, { h: 'allowed', num: 1, f: (r) => num(r.allow) }, { h: 'blocked', num: 1, f: (r) => num(r.block) }, { h: 'errors', num: 1, f: (r) => num(r.error) }], d.by_protocol);
  $('packs').innerHTML = table([{ h: 'pack', f: (r) => r.pack_id }, { h: 'rules matched', num: 1, f: (r) => num(r.rules) }, { h: 'matches', num: 1, f: (r) => num(r.matches) }], d.packs) +
    '<p class="muted">Plan generations: ' + d.generations.map((g) => esc(g.generation) + ' (' + num(g.events) + ' events from ' + esc(fmtT(g.first_ms)) + ')').join(', ') + '</p>';
  $('timeline').innerHTML = stacked(d.timeline.points, 1200, 180) + '<p class="muted">' + d.timeline.step_s + ' s per bar · <span class="allow">■ allow</span> <span class="block">■ block</span> <span class="error">■ error</span></p>';
  renderBlocks(d);
  $('rules').innerHTML = table([{ h: 'rule', f: (r) => r.rule_id }, { h: 'pack', f: (r) => r.pack_id }, { h: 'mode', f: (r) => r.mode }, { h: 'action', f: (r) => r.action }, { h: 'matches', num: 1, f: (r) => num(r.matches) }, { h: 'decided', num: 1, f: (r) => num(r.decisive) }, { h: 'last', f: (r) => fmtT(r.last_ms) }], d.rules);
  $('targets').innerHTML = table([{ h: 'protocol', f: (r) => r.family }, { h: 'target', f: (r) => r.target }, { h: 'events', num: 1, f: (r) => num(r.events) }, { h: 'refused', num: 1, f: (r) => num(r.blocked) }], d.top_targets);
  $('findings').innerHTML = d.findings.length === 0 ? '<p class="muted">No findings.</p>' : table([{ h: 'severity', f: (r) => r.severity, cls: (r) => 'sev-' + r.severity }, { h: 'rule', f: (r) => r.rule_id }, { h: 'finding', f: (r) => r.title }, { h: 'count', num: 1, f: (r) => num(r.count) }, { h: 'evidence', f: (r) => r.evidence.join(' · ') }, { h: 'first', f: (r) => fmtT(r.first_ms) }], d.findings);
  $('latency').innerHTML = d.latency.map((l) => '<div><h3>' + esc(l.family) + ' <span class="muted">(' + num(l.samples) + ' decisions)</span></h3>' + histogram(l, 520, 140) +
    '<p>p50 <b>' + l.p50_us.toFixed(1) + '</b> µs · p95 <b>' + l.p95_us.toFixed(1) + '</b> µs · p99 <b>' + l.p99_us.toFixed(1) + '</b> µs · max ' + l.max_us.toFixed(1) + ' µs</p></div>').join('');
}
let current = null;
function renderBlocks(d) {
  current = d;
  const q = ($('filter').value || '').toLowerCase();
  const matched = d.blocks.filter((b) => q === '' || [b.family, b.target, b.rule_id, b.reason, b.process].some((v) => String(v ?? '').toLowerCase().includes(q)));
  // At most SHOWN rows in the page at once; the filter searches every listed block.
  const rows = matched.slice(0, SHOWN);
  $('blocks').innerHTML = table([{ h: 'time', f: (r) => fmtT(r.t_ms) }, { h: 'protocol', f: (r) => r.family }, { h: 'target', f: (r) => r.target }, { h: 'decision', f: (r) => r.decision, cls: (r) => r.decision }, { h: 'rule', f: (r) => r.rule_id ?? '–' }, { h: 'reason', f: (r) => r.reason }, { h: 'process', f: (r) => r.process }], rows);
  $('blocks-count').textContent = rows.length + ' shown' + (matched.length > rows.length ? ' of ' + matched.length + ' matching (filter to narrow)' : '') + ' · ' + d.blocks_total + ' refused in the session' + (d.blocks.length < d.blocks_total ? ', the newest ' + d.blocks.length + ' listed' : '');
}
$('filter').addEventListener('input', () => current && renderBlocks(current));
render(JSON.parse($('data').textContent));
const live = document.body.dataset.live;
if (live) setInterval(() => fetch(live, { cache: 'no-store', credentials: 'same-origin' }).then((r) => r.ok ? r.json() : null).then((d) => { if (d) render(d); }).catch(() => {}), ${LIVE_REFRESH_MS});
`;

/** The report as one HTML document; `liveDataUrl` makes it refresh itself from that URL. */
export function reportHtml(data: ReportData, liveDataUrl?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'">
<title>celgate session ${data.session.session_id.replace(/[<>&"]/g, '')}</title><style>${STYLE}</style></head>
<body${liveDataUrl === undefined ? '' : ` data-live="${liveDataUrl}"`}>
<header><h1 id="title">celgate session</h1><div id="meta" class="muted"></div><div id="totals" class="cards"></div></header>
<main>
<h2>By protocol</h2><div id="protocols"></div>
<h2>Timeline</h2><div id="timeline"></div>
<h2>Blocked and refused</h2><input id="filter" type="search" placeholder="filter: host, rule, reason, process…"> <span id="blocks-count" class="muted"></span><div id="blocks" class="scroll"></div>
<div class="grid"><div><h2>Rules</h2><div id="rules" class="scroll"></div></div><div><h2>Top targets</h2><div id="targets" class="scroll"></div></div></div>
<h2>Findings</h2><div id="findings"></div>
<h2>Packs</h2><div id="packs"></div>
<h2>Decision latency</h2><div id="latency" class="grid"></div>
</main>
<script id="data" type="application/json">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
