import { rowSpread, type Board, type BoardRow, type BoardSection } from './board.ts';
import { executionText, scoringText } from './render-text.ts';

/**
 * The leaderboard as one self-contained HTML page: inline CSS, inline SVG charts and a few
 * lines of inline JS for sorting. Nothing is fetched, so the file can be mailed, attached
 * to a CI build or opened offline. Every string from a run record is escaped: run names
 * are user input.
 */

export interface HtmlOptions {
  title?: string;
  /** Shown in the footer, e.g. the vlbench version. */
  generator?: string;
}

const PALETTE = ['#4C78A8', '#F58518', '#54A24B', '#E45756', '#72B7B2', '#B279A2', '#EECA3B', '#9D755D', '#FF9DA6', '#BAB0AC'];
/** Metrics besides the primary shown in the main table; the rest sit in a folded full table. */
const TABLE_METRIC_LIMIT = 6;

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function fixed(value: number): string {
  return value.toFixed(2);
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** Axis ticks at 1, 2 or 5 × 10^k covering [low, high]. */
function niceTicks(low: number, high: number, target = 5): { ticks: number[]; low: number; high: number } {
  if (!(high > low)) {
    const pad = Math.abs(low) > 0 ? Math.abs(low) * 0.1 : 1;
    return niceTicks(low - pad, high + pad, target);
  }
  const raw = (high - low) / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const first = Math.floor(low / step) * step;
  const last = Math.ceil(high / step) * step;
  const ticks: number[] = [];
  for (let value = first; value <= last + step / 2; value += step) ticks.push(Number(value.toPrecision(12)));
  return { ticks, low: first, high: last };
}

function tickLabel(value: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
  return value.toFixed(decimals);
}

function methodColors(board: Board): Map<string, string> {
  const colors = new Map<string, string>();
  for (const section of board.sections) for (const row of section.rows) if (!colors.has(row.method)) colors.set(row.method, PALETTE[colors.size % PALETTE.length]);
  return colors;
}

function barChart(section: BoardSection, colors: Map<string, string>, confidence: number): string {
  const rows = section.rows;
  const labelWidth = 150;
  const valueWidth = 56;
  const plotWidth = 290;
  const barHeight = 24;
  const gap = 10;
  const top = 8;
  const axisHeight = 28;
  const height = top + rows.length * (barHeight + gap) + axisHeight;
  const width = labelWidth + plotWidth + valueWidth;
  const spreads = rows.map(rowSpread);
  const lows = rows.map((row, i) => Math.min(row.primary.mean, spreads[i]?.low ?? Infinity));
  const highs = rows.map((row, i) => Math.max(row.primary.mean, spreads[i]?.high ?? -Infinity));
  // Bars start at zero so their lengths stay honest; the whiskers show how far apart runs really are.
  const axis = niceTicks(Math.min(0, ...lows), Math.max(0, ...highs));
  const x = (value: number) => labelWidth + ((value - axis.low) / (axis.high - axis.low)) * plotWidth;
  const parts: string[] = [];
  for (const tick of axis.ticks) {
    const tx = x(tick).toFixed(1);
    parts.push(`<line class="grid" x1="${tx}" x2="${tx}" y1="${top - 4}" y2="${height - axisHeight + 2}"/>`);
    parts.push(`<text class="tick" x="${tx}" y="${height - axisHeight + 18}" text-anchor="middle">${tickLabel(tick, axis.ticks)}</text>`);
  }
  rows.forEach((row, index) => {
    const y = top + index * (barHeight + gap);
    const color = colors.get(row.method) ?? PALETTE[0];
    const x0 = x(Math.max(axis.low, 0));
    const x1 = x(row.primary.mean);
    const spread = spreads[index];
    const tooltip = `${row.name} (${row.method})\n${section.primaryMetric} ${fixed(row.primary.mean)}${
      spread
        ? spread.kind === 'interval'
          ? `${row.primary.std !== null ? ` ± ${fixed(row.primary.std)} over ${row.primary.n} seeds` : ''}, ${Math.round(confidence * 100)}% CI [${fixed(spread.low)}, ${fixed(spread.high)}] over ${row.primary.intervalOver}`
          : ` ± ${fixed(row.primary.std!)} over ${row.primary.n} seeds`
        : ''
    }`;
    parts.push(`<g class="bar"><title>${escapeHtml(tooltip)}</title>`);
    parts.push(`<text class="label" x="${labelWidth - 10}" y="${y + barHeight / 2 + 4}" text-anchor="end">${escapeHtml(truncate(`${row.rank}. ${row.name}`, 22))}</text>`);
    parts.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y}" width="${Math.abs(x1 - x0).toFixed(1)}" height="${barHeight}" rx="3" fill="${color}"/>`);
    if (spread) {
      const wl = x(spread.low).toFixed(1);
      const wh = x(spread.high).toFixed(1);
      const mid = y + barHeight / 2;
      parts.push(
        `<path class="whisker${spread.kind === 'std' ? ' std' : ''}" d="M${wl} ${mid}H${wh}M${wl} ${mid - 6}V${mid + 6}M${wh} ${mid - 6}V${mid + 6}"/>`,
      );
    }
    const valueX = Math.max(x1, spread ? x(spread.high) : x1) + 8;
    parts.push(`<text class="value" x="${valueX.toFixed(1)}" y="${y + barHeight / 2 + 4}">${fixed(row.primary.mean)}</text></g>`);
  });
  return `<svg class="chart-svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`${section.primaryMetric} per run`)}">${parts.join('')}</svg>`;
}

function curveChart(section: BoardSection, colors: Map<string, string>): string | null {
  const series = section.rows.flatMap((row) => row.curves.map((curve) => ({ row, curve })));
  if (series.length === 0) return null;
  const width = 560;
  const height = 300;
  const margin = { left: 56, right: 16, top: 12, bottom: 40 };
  const steps = series.flatMap(({ curve }) => curve.points.map((p) => p.step));
  const losses = series.flatMap(({ curve }) => curve.points.map((p) => p.loss)).filter(Number.isFinite);
  const xAxis = niceTicks(Math.min(...steps), Math.max(...steps), 6);
  const yAxis = niceTicks(Math.min(...losses), Math.max(...losses), 5);
  const px = (step: number) => margin.left + ((step - xAxis.low) / (xAxis.high - xAxis.low)) * (width - margin.left - margin.right);
  const py = (loss: number) => height - margin.bottom - ((loss - yAxis.low) / (yAxis.high - yAxis.low)) * (height - margin.top - margin.bottom);
  const parts: string[] = [];
  for (const tick of yAxis.ticks) {
    const ty = py(tick).toFixed(1);
    parts.push(`<line class="grid" x1="${margin.left}" x2="${width - margin.right}" y1="${ty}" y2="${ty}"/>`);
    parts.push(`<text class="tick" x="${margin.left - 6}" y="${(py(tick) + 4).toFixed(1)}" text-anchor="end">${tickLabel(tick, yAxis.ticks)}</text>`);
  }
  for (const tick of xAxis.ticks) {
    parts.push(`<text class="tick" x="${px(tick).toFixed(1)}" y="${height - margin.bottom + 16}" text-anchor="middle">${tickLabel(tick, xAxis.ticks)}</text>`);
  }
  parts.push(`<line class="axis" x1="${margin.left}" x2="${width - margin.right}" y1="${height - margin.bottom}" y2="${height - margin.bottom}"/>`);
  parts.push(`<text class="axis-title" x="${(margin.left + width - margin.right) / 2}" y="${height - 6}" text-anchor="middle">step</text>`);
  parts.push(`<text class="axis-title" transform="translate(14 ${(margin.top + height - margin.bottom) / 2}) rotate(-90)" text-anchor="middle">training loss</text>`);
  for (const { row, curve } of series) {
    const points = curve.points.filter((p) => Number.isFinite(p.loss));
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p.step).toFixed(1)} ${py(p.loss).toFixed(1)}`).join('');
    const label = `${curve.runName}${curve.seed !== null ? ` (seed ${curve.seed})` : ''}: final loss ${points.length ? points[points.length - 1].loss.toPrecision(4) : 'n/a'}`;
    parts.push(`<path class="curve" d="${d}" stroke="${colors.get(row.method) ?? PALETTE[0]}"><title>${escapeHtml(label)}</title></path>`);
  }
  return `<svg class="chart-svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="training curves">${parts.join('')}</svg>`;
}

function legend(section: BoardSection, colors: Map<string, string>): string {
  const methods = [...new Set(section.rows.map((row) => row.method))];
  return `<ul class="legend">${methods.map((method) => `<li><span class="swatch" style="background:${colors.get(method)}"></span>${escapeHtml(method)}</li>`).join('')}</ul>`;
}

function seedsText(row: BoardRow): string {
  if (row.seeds.length === 1) return row.seeds[0] === null ? '–' : String(row.seeds[0]);
  return `${row.seeds.length} seeds (${row.seeds.join(', ')})`;
}

/** A seed group shows "± std [lower, upper]": its spread over seeds, then its interval over seeds and examples. */
function spreadText(row: BoardRow): { text: string; sortValue: number | null; title: string } {
  const std = row.primary.std !== null ? `± ${fixed(row.primary.std)}` : '';
  if (row.primary.interval) {
    const interval = `<span class="interval">[${fixed(row.primary.interval.lower)}, ${fixed(row.primary.interval.upper)}]</span>`;
    return { text: std ? `${std} ${interval}` : interval, sortValue: row.primary.interval.upper - row.primary.interval.lower, title: `bootstrap over ${row.primary.intervalOver}` };
  }
  if (std) return { text: std, sortValue: 2 * row.primary.std!, title: 'sample std over seeds' };
  return { text: '–', sortValue: null, title: '' };
}

function numberCell(value: number | undefined, extraClass = ''): string {
  if (value === undefined) return `<td class="num${extraClass}" data-value="">–</td>`;
  return `<td class="num${extraClass}" data-value="${value}">${fixed(value)}</td>`;
}

function runTable(section: BoardSection, colors: Map<string, string>, confidence: number, metricNames: string[], tableClass: string): string {
  const header = [
    ['#', 'number'], ['run', 'text'], ['model', 'text'], ['method', 'text'], ['seeds', 'text'], [section.primaryMetric, 'number'],
    [`± std / ${Math.round(confidence * 100)}% CI`, 'number'], ...metricNames.map((name) => [name, 'number']), ['examples', 'number'], ['ran on', 'text'],
  ];
  // Metric names like "answerType/yes/no" may break after a slash instead of widening the table.
  const head = header
    .map(([label, type], column) => `<th scope="col" data-type="${type}" data-column="${column}"><button type="button">${escapeHtml(label).replace(/\//g, '/<wbr>')}</button></th>`)
    .join('');
  const body = section.rows
    .map((row) => {
      const spread = spreadText(row);
      const runTitle = row.runIds.map((id, i) => `${row.runNames[i]}: ${id}`).join('\n');
      const methodTitle = JSON.stringify(row.hyperparameters, null, 1);
      return (
        `<tr class="run" data-run-ids="${escapeHtml(row.runIds.join(' '))}">` +
        `<td class="num rank" data-value="${row.rank}">${row.rank}</td>` +
        `<td data-value="${escapeHtml(row.name)}" title="${escapeHtml(runTitle)}"><span class="run-name">${escapeHtml(row.name)}</span></td>` +
        `<td data-value="${escapeHtml(row.model)}" title="${escapeHtml(row.modelFingerprint ?? 'no fingerprint')}">${escapeHtml(row.model)}</td>` +
        `<td data-value="${escapeHtml(row.method)}" title="${escapeHtml(methodTitle)}"><span class="swatch" style="background:${colors.get(row.method)}"></span>${escapeHtml(row.method)}</td>` +
        `<td data-value="${escapeHtml(seedsText(row))}">${escapeHtml(seedsText(row))}</td>` +
        numberCell(row.primary.mean, ' primary') +
        `<td class="num spread" data-value="${spread.sortValue ?? ''}" title="${escapeHtml(spread.title)}">${spread.text}</td>` +
        metricNames.map((name) => numberCell(row.metrics[name]?.mean)).join('') +
        `<td class="num" data-value="${row.examples}">${row.examples > 0 ? row.examples : '–'}</td>` +
        `<td class="execution" data-value="${escapeHtml(executionText(row))}">${escapeHtml(executionText(row))}</td></tr>`
      );
    })
    .join('');
  return `<div class="table-wrap"><table class="${tableClass}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

function renderSection(section: BoardSection, index: number, board: Board, colors: Map<string, string>): string {
  const { task, taskVersion, split, splitFingerprint, metricVersion } = section.key;
  const others = section.metricNames.filter((name) => name !== section.primaryMetric);
  const shown = others.slice(0, TABLE_METRIC_LIMIT);
  const curves = curveChart(section, colors);
  const runCount = section.rows.reduce((sum, row) => sum + row.runIds.length, 0);
  return `
<section class="board" id="group-${index + 1}">
  <header class="board-head">
    <h2>${escapeHtml(task)} <span class="split">${escapeHtml(split)}</span></h2>
    <dl class="key">
      <div><dt>task version</dt><dd>${escapeHtml(taskVersion)}</dd></div>
      <div><dt>metric</dt><dd>${escapeHtml(section.metric)} ${escapeHtml(metricVersion)}</dd></div>
      ${scoringText(section) ? `<div><dt>scoring</dt><dd>${escapeHtml(scoringText(section))}</dd></div>` : ''}
      <div><dt>ranked by</dt><dd>${escapeHtml(section.primaryMetric)}</dd></div>
      <div><dt>split fingerprint</dt><dd><code title="${escapeHtml(splitFingerprint)}">${escapeHtml(splitFingerprint.slice(0, 12))}…</code></dd></div>
      <div><dt>runs</dt><dd>${runCount} in ${section.rows.length} rows</dd></div>
    </dl>
  </header>
  <div class="charts">
    <figure class="chart">
      <figcaption>${escapeHtml(section.primaryMetric)} — whiskers: ${Math.round(board.confidence * 100)}% bootstrap CI, over examples (single runs) or over seeds and examples (seed groups), an image's examples drawn together where the scores name images; ± 1 std where a seed group has no per-example scores (dashed)</figcaption>
      ${barChart(section, colors, board.confidence)}
    </figure>
    ${curves ? `<figure class="chart"><figcaption>training loss per step (hover a line for its run)</figcaption>${curves}</figure>` : ''}
  </div>
  ${legend(section, colors)}
  ${runTable(section, colors, board.confidence, shown, 'sortable runs-table')}
  ${others.length > shown.length ? `<details class="all-metrics"><summary>all ${section.metricNames.length} metrics</summary>${runTable(section, colors, board.confidence, others, 'sortable')}</details>` : ''}
</section>`;
}

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #ffffff; --text: #1d2330; --muted: #5f6b7a; --line: #e3e6eb; --accent: #4C78A8; --row: #f9fafb; }
@media (prefers-color-scheme: dark) { :root { --bg: #14171c; --card: #1c2027; --text: #e6e9ee; --muted: #9aa5b4; --line: #2d333d; --row: #20252d; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.page { max-width: 1180px; margin: 0 auto; padding: 28px 24px 40px; }
.page-head h1 { margin: 0 0 4px; font-size: 26px; letter-spacing: -0.01em; }
.page-head p { margin: 0; color: var(--muted); }
.board { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px 20px; margin-top: 22px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.board-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 24px; }
.board-head h2 { margin: 0; font-size: 20px; }
.board-head .split { font-weight: 500; color: var(--muted); }
.key { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 0; font-size: 12.5px; }
.key div { display: flex; gap: 6px; }
.key dt { color: var(--muted); }
.key dd { margin: 0; font-weight: 500; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 28px; margin: 16px 0 10px; }
.chart { margin: 0; flex: 1 1 440px; min-width: 0; }
.chart figcaption { font-size: 12.5px; color: var(--muted); margin-bottom: 6px; }
.chart-svg { width: 100%; height: auto; max-width: 100%; overflow: visible; }
.chart-svg text { font: 12px system-ui, sans-serif; fill: var(--text); }
.chart-svg .tick { fill: var(--muted); font-size: 11px; }
.chart-svg .value { font-weight: 600; font-variant-numeric: tabular-nums; }
.chart-svg .grid { stroke: var(--line); stroke-width: 1; }
.chart-svg .axis { stroke: var(--muted); stroke-width: 1; }
.chart-svg .axis-title { fill: var(--muted); font-size: 11.5px; }
.chart-svg .whisker { stroke: var(--text); stroke-width: 1.6; fill: none; }
.chart-svg .whisker.std { stroke-dasharray: 3 2; }
.chart-svg .bar:hover rect { filter: brightness(1.12); }
.chart-svg .curve { fill: none; stroke-width: 2; stroke-linejoin: round; opacity: .9; }
.chart-svg .curve:hover { stroke-width: 3.5; opacity: 1; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; padding: 0; margin: 0 0 10px; font-size: 12.5px; color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.table-wrap { overflow-x: auto; margin-top: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; position: sticky; top: 0; background: var(--card); white-space: normal; max-width: 120px; vertical-align: bottom; }
th button { all: unset; cursor: pointer; }
th button::after { content: " ↕"; opacity: .35; }
th[aria-sort="ascending"] button::after { content: " ▲"; opacity: .8; }
th[aria-sort="descending"] button::after { content: " ▼"; opacity: .8; }
tbody tr:nth-child(even) { background: var(--row); }
tbody tr:hover { background: color-mix(in srgb, var(--accent) 10%, transparent); }
td.num, th[data-type="number"] { text-align: right; }
td.primary { font-weight: 650; }
td.spread { color: var(--muted); }
td.rank { color: var(--muted); }
.run-name { font-weight: 600; }
details.all-metrics { margin-top: 10px; }
details.all-metrics summary { cursor: pointer; color: var(--muted); font-size: 12.5px; }
.empty { margin-top: 30px; color: var(--muted); }
footer { margin-top: 26px; color: var(--muted); font-size: 12px; }
`;

const SCRIPT = `
document.querySelectorAll('table.sortable').forEach(function (table) {
  var headers = table.querySelectorAll('th');
  headers.forEach(function (th) {
    th.querySelector('button').addEventListener('click', function () {
      var column = Number(th.dataset.column);
      var numeric = th.dataset.type === 'number';
      var ascending = th.getAttribute('aria-sort') !== 'ascending';
      headers.forEach(function (other) { other.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var order;
        if (numeric) {
          var empty = (x === '') - (y === '');
          if (empty) return empty;
          order = Number(x) - Number(y);
        } else {
          order = x.localeCompare(y);
        }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
`;

export function renderHtml(board: Board, options: HtmlOptions = {}): string {
  const title = options.title ?? 'vlbench leaderboard';
  const colors = methodColors(board);
  const sections = board.sections.map((section, index) => renderSection(section, index, board, colors)).join('\n');
  const summary =
    board.sections.length === 0
      ? 'No runs recorded yet.'
      : `${board.runCount} runs in ${board.sections.length} comparability group${board.sections.length === 1 ? '' : 's'}. Runs are ranked only against runs with the same task, task version, split, split fingerprint, limit (smoke runs), metric, metric version and scoring options.`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${escapeHtml(options.generator ?? 'vlbench')}">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<div class="page">
<header class="page-head">
  <h1>${escapeHtml(title)}</h1>
  <p>${escapeHtml(summary)}</p>
</header>
<main>
${sections || '<p class="empty">Record a run with <code>vlbench run</code> or <code>vlbench leaderboard add</code>.</p>'}
</main>
<footer>Single runs: ${Math.round(board.confidence * 100)}% percentile-bootstrap interval over examples (${board.resamples} resamples, seed ${board.bootstrapSeed}). Seed groups: mean ± sample standard deviation over seeds, and a ${Math.round(board.confidence * 100)}% interval of a two-way bootstrap over seeds and examples. Where the per-example scores name their images, images are resampled, each with all its examples. Generated by ${escapeHtml(options.generator ?? 'vlbench')}.</footer>
</div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
