import { stringify } from 'csv-stringify/sync';
import type { Board, BoardRow, BoardSection } from './board.ts';

/** Terminal, Markdown, CSV and JSON renderings of one Board. */

export function sectionTitle(section: BoardSection): string {
  const { task, taskVersion, split, splitFingerprint, metricVersion } = section.key;
  const scoring = scoringText(section);
  return `${task} ${taskVersion} · ${split} (split ${splitFingerprint.slice(0, 12)}) · ${section.metric} ${metricVersion}${scoring ? ` (${scoring})` : ''} · ranked by ${section.primaryMetric}`;
}

/** The section's scoring options where they are not the defaults ("legacy normalisation", "5 folds", weights selected on the scored split); empty for the defaults. */
export function scoringText(section: BoardSection): string {
  const parts: string[] = [];
  if (section.key.scoring.normalization !== 'current') parts.push(`${section.key.scoring.normalization} normalisation`);
  if (section.key.scoring.folds !== 1) parts.push(`${section.key.scoring.folds} folds`);
  if (section.key.selection === 'evaluation') parts.push('weights selected on this split');
  return parts.join(', ');
}

/** "wasm · NVIDIA H200 · float16 · batch 64 · 3 shards": what the row's runs ran on, known fields only; several values joined by "/". */
export function executionText(row: BoardRow): string {
  const field = (values: (string | number | null)[], format: (value: string | number) => string) => {
    const known = values.filter((value): value is string | number => value !== null);
    return known.length === 0 ? null : known.map(format).join('/');
  };
  const parts = [
    field(row.execution.backend, String),
    field(row.execution.device, String),
    field(row.execution.dtype, String),
    field(row.execution.batchSize, (value) => `batch ${value}`),
    field(row.execution.shardCount, (value) => `${value} shard${value === 1 ? '' : 's'}`),
  ].filter((part): part is string => part !== null);
  return parts.length > 0 ? parts.join(' · ') : '–';
}

function fixed(value: number | null | undefined): string {
  return value === null || value === undefined ? '' : value.toFixed(2);
}

/**
 * "61.23 [60.10, 62.35]" for one run (interval over examples), "61.23 ± 0.45 [59.80, 62.61]" for
 * a seed group (± std over seeds, then the interval over seeds and examples), "61.23 ± 0.45"
 * for a seed group without per-example scores.
 */
export function primaryCell(row: BoardRow): string {
  const std = row.primary.std !== null ? ` ± ${fixed(row.primary.std)}` : '';
  const interval = row.primary.interval ? ` [${fixed(row.primary.interval.lower)}, ${fixed(row.primary.interval.upper)}]` : '';
  return `${fixed(row.primary.mean)}${std}${interval}`;
}

function seedsCell(row: BoardRow): string {
  if (row.seeds.length === 1) return row.seeds[0] === null ? '–' : String(row.seeds[0]);
  return `${row.seeds.length} (${row.seeds.join(', ')})`;
}

/** The metrics shown in narrow formats: the primary first, then a few others; csv/json/html carry all. */
const NARROW_METRIC_LIMIT = 5;
function narrowMetrics(section: BoardSection): { shown: string[]; hidden: number } {
  const others = section.metricNames.filter((name) => name !== section.primaryMetric);
  return { shown: others.slice(0, NARROW_METRIC_LIMIT), hidden: Math.max(0, others.length - NARROW_METRIC_LIMIT) };
}

function sectionCells(section: BoardSection, confidenceLabel: string): { header: string[]; rows: string[][]; hidden: number } {
  const { shown, hidden } = narrowMetrics(section);
  const header = ['#', 'name', 'model', 'method', 'seeds', `${section.primaryMetric} (± std, ${confidenceLabel})`, ...shown, 'examples', 'ran on'];
  const rows = section.rows.map((row) => [
    String(row.rank),
    row.name,
    row.model,
    row.method,
    seedsCell(row),
    primaryCell(row),
    ...shown.map((name) => (row.metrics[name] ? fixed(row.metrics[name].mean) : '')),
    row.examples > 0 ? String(row.examples) : '–',
    executionText(row),
  ]);
  return { header, rows, hidden };
}

function confidenceLabel(board: Board): string {
  return `${Math.round(board.confidence * 1000) / 10}% CI`;
}

export function renderTable(board: Board): string {
  if (board.sections.length === 0) return 'No runs recorded yet.\n';
  const out: string[] = [];
  for (const section of board.sections) {
    const { header, rows, hidden } = sectionCells(section, confidenceLabel(board));
    const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column].length)));
    const numeric = (column: number) => column === 0 || (column >= 5 && column < header.length - 1);
    const line = (cells: string[]) => cells.map((cell, column) => (numeric(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column]))).join('  ').trimEnd();
    out.push(sectionTitle(section), line(header), widths.map((width) => '─'.repeat(width)).join('  '), ...rows.map(line));
    if (hidden > 0) out.push(`(${hidden} more metrics: --format csv, json or html)`);
    out.push('');
  }
  out.push(
    `${board.runCount} runs in ${board.sections.length} comparability groups; runs are ranked only within a group. ` +
      `Intervals: ${confidenceLabel(board)}, bootstrap over examples (single runs) or over seeds and examples (seed groups, after their ± sample std), an image's examples drawn together where the scores name images, ${board.resamples} resamples.`,
  );
  return out.join('\n') + '\n';
}

function markdownEscape(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/([*_`[\]<>])/g, '\\$1').replace(/\r?\n/g, ' ');
}

export function renderMarkdown(board: Board): string {
  if (board.sections.length === 0) return '_No runs recorded yet._\n';
  const out: string[] = [];
  for (const section of board.sections) {
    const { header, rows, hidden } = sectionCells(section, confidenceLabel(board));
    out.push(`### ${markdownEscape(sectionTitle(section))}`, '');
    out.push(`| ${header.map(markdownEscape).join(' | ')} |`);
    out.push(`|${header.map((_, column) => (column === 0 || (column >= 5 && column < header.length - 1) ? ' ---: ' : ' --- ')).join('|')}|`);
    for (const row of rows) out.push(`| ${row.map(markdownEscape).join(' | ')} |`);
    if (hidden > 0) out.push('', `_${hidden} more metrics in the CSV or JSON output._`);
    out.push('');
  }
  out.push(
    `_${board.runCount} runs in ${board.sections.length} comparability groups (task, task version, split, split fingerprint, limit, metric, metric version, scoring options); ranks hold only within a group. ` +
      `Single runs: ${confidenceLabel(board)}, bootstrap over examples. Seed groups: mean ± sample std, then the ${confidenceLabel(board)} of a bootstrap over seeds and examples (${board.resamples} resamples). Where the scores name images, an image's examples are drawn together._`,
  );
  return out.join('\n') + '\n';
}

/** Fixed columns of the CSV, before the per-metric columns. */
export const CSV_FIXED_COLUMNS = [
  'task', 'task_version', 'split', 'split_fingerprint', 'metric', 'metric_version', 'normalization', 'folds', 'rank', 'name', 'run_ids', 'run_names',
  'model', 'model_fingerprint', 'method', 'hyperparameters', 'backend', 'device', 'dtype', 'batch_size', 'shard_count', 'seeds', 'n_seeds', 'examples',
  'primary_metric', 'primary_mean', 'primary_std', 'ci_lower', 'ci_upper', 'ci_over', 'ci_confidence', 'ci_resamples',
] as const;

/**
 * One row per leaderboard row (a run, or a seed group), every metric as `metric:<name>` with
 * its std over seeds as `metric:<name>:std`. Numbers are written in full precision, so
 * parsing the file gives back exactly the numbers on the board; an empty cell means none.
 */
export function renderCsv(board: Board): string {
  const metricNames: string[] = [];
  for (const section of board.sections) for (const name of section.metricNames) if (!metricNames.includes(name)) metricNames.push(name);
  const header = [...CSV_FIXED_COLUMNS, ...metricNames.flatMap((name) => [`metric:${name}`, `metric:${name}:std`])];
  const records: (string | number)[][] = [];
  for (const section of board.sections) {
    for (const row of section.rows) {
      const interval = row.primary.interval;
      records.push([
        section.key.task, section.key.taskVersion, section.key.split, section.key.splitFingerprint, section.metric, section.key.metricVersion,
        section.key.scoring.normalization, section.key.scoring.folds,
        row.rank, row.name, row.runIds.join(';'), row.runNames.join(';'), row.model, row.modelFingerprint ?? '', row.method,
        JSON.stringify(row.hyperparameters), row.backend ?? '', ...(['device', 'dtype', 'batchSize', 'shardCount'] as const).map((field) => knownValues(row.execution[field])),
        row.seeds.map((seed) => (seed === null ? '' : seed)).join(';'), row.seeds.length, row.examples,
        section.primaryMetric, row.primary.mean, row.primary.std ?? '', interval?.lower ?? '', interval?.upper ?? '', row.primary.intervalOver ?? '', interval?.confidence ?? '', interval?.resamples ?? '',
        ...metricNames.flatMap((name) => [row.metrics[name]?.mean ?? '', row.metrics[name]?.std ?? '']),
      ]);
    }
  }
  return stringify([header, ...records], { record_delimiter: '\n' });
}

/** Several values of a seed group's runs as "a;b"; unknown ones left out. */
function knownValues(values: (string | number | null)[]): string {
  return values.filter((value) => value !== null).join(';');
}

export function renderJson(board: Board): string {
  return JSON.stringify(board, null, 2) + '\n';
}
