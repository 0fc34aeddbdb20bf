import { stringify } from 'yaml';
import { InputError } from '../core/errors.ts';
import type { Board, BoardRow, BoardSection } from './board.ts';

/**
 * The board as Hugging Face model-card metadata: the `model-index` block of a README.md's YAML
 * front matter, where results are published now that Papers with Code has closed. Field names
 * follow the Hub's template (hub-docs, modelcard.md) and huggingface_hub's EvalResult:
 *
 *   model-index:
 *   - name: <model>
 *     results:
 *     - task:    {type (required), name}
 *       dataset: {type (required), name (required), config, split, revision, args}
 *       metrics:
 *       - {type (required), value (required), name, config, args, verified}
 *
 * One model-index entry per run or seed-group name, with one result per board row of that name:
 * its task, the split it was scored on, and every metric the row has (the primary first). A result says
 * nothing of comparability by itself, so each metric's `args` carries vlbench's comparability
 * key: the metric version, the task version, the split fingerprint and the scoring options.
 * `verified` is left out: only evaluations the Hub ran itself may claim it.
 */

/** What the run records do not know about the data: the Hub dataset it came from. */
export interface ModelIndexDataset {
  /** Hub dataset id, e.g. "lmms-lab/VQAv2"; default: the task name. */
  type?: string;
  /** A pretty name; default: the task's usual dataset name and the split. */
  name?: string;
  /** The dataset configuration (`load_dataset(id, config)`). */
  config?: string;
  /** The dataset repository's git revision that was scored. */
  revision?: string;
}

export interface ModelIndexOptions {
  dataset?: ModelIndexDataset;
}

export interface ModelIndexMetric {
  type: string;
  value: number;
  name: string;
  args: Record<string, unknown>;
}

export interface ModelIndexResult {
  task: { type: string; name: string };
  dataset: { type: string; name: string; config?: string; split: string; revision?: string };
  metrics: ModelIndexMetric[];
}

export interface ModelIndexEntry {
  name: string;
  results: ModelIndexResult[];
}

/**
 * The Hub's task identifiers (its pipeline tags and dataset task categories) for vlbench's tasks.
 * The Hub has no image-text retrieval tag; "image-text-retrieval" says what the numbers are.
 */
const HUB_TASKS: Readonly<Record<string, { type: string; name: string; dataset: string }>> = {
  vqa: { type: 'visual-question-answering', name: 'Visual Question Answering', dataset: 'VQA v2' },
  gqa: { type: 'visual-question-answering', name: 'Visual Question Answering', dataset: 'GQA' },
  vizwiz: { type: 'visual-question-answering', name: 'Visual Question Answering', dataset: 'VizWiz' },
  vcr: { type: 'multiple-choice', name: 'Visual Commonsense Reasoning', dataset: 'VCR' },
  retrieval: { type: 'image-text-retrieval', name: 'Image-Text Retrieval', dataset: 'Karpathy split' },
};

export function modelIndexEntries(board: Board, options: ModelIndexOptions = {}): ModelIndexEntry[] {
  // One entry per name: `vlbench run` records one run per evaluation split under one name (a
  // SynthScenes run scores test/source and test/target), and a card lists one model's results together.
  const entries = new Map<string, ModelIndexEntry>();
  for (const section of board.sections) {
    for (const row of section.rows) {
      const entry = entries.get(row.name) ?? { name: row.name, results: [] };
      entry.results.push(rowResult(section, row, options.dataset ?? {}));
      entries.set(row.name, entry);
    }
  }
  return [...entries.values()];
}

/** The YAML front-matter block (without the `---` fences), ready to paste into a model card. */
export function renderModelIndex(board: Board, options: ModelIndexOptions = {}): string {
  const entries = modelIndexEntries(board, options);
  if (entries.length === 0) throw new InputError('no runs to export: the leaderboard (with these filters) is empty', { field: '--task' });
  // Without aliases: every metric's args repeat the row's seeds, and a card reads better (and
  // simpler YAML readers cope) with each written out.
  return stringify({ 'model-index': entries }, { lineWidth: 0, aliasDuplicateObjects: false });
}

function rowResult(section: BoardSection, row: BoardRow, dataset: ModelIndexDataset): ModelIndexResult {
  const { key } = section;
  const hubTask = HUB_TASKS[key.task] ?? { type: key.task, name: key.task, dataset: key.task };
  const names = [section.primaryMetric, ...section.metricNames.filter((name) => name !== section.primaryMetric)].filter((name) => row.metrics[name] !== undefined);
  return {
    task: { type: hubTask.type, name: hubTask.name },
    dataset: {
      type: dataset.type ?? key.task,
      name: dataset.name ?? `${hubTask.dataset} ${key.split}`,
      ...(dataset.config !== undefined ? { config: dataset.config } : {}),
      split: key.split,
      ...(dataset.revision !== undefined ? { revision: dataset.revision } : {}),
    },
    metrics: names.map((name) => metricEntry(section, row, name)),
  };
}

function metricEntry(section: BoardSection, row: BoardRow, name: string): ModelIndexMetric {
  const { key } = section;
  const summary = row.metrics[name];
  const args: Record<string, unknown> = {
    metric_version: key.metricVersion,
    task_version: key.taskVersion,
    split_fingerprint: key.splitFingerprint,
    normalization: key.scoring.normalization,
    folds: key.scoring.folds,
  };
  // Only where they hold: a smoke run's limit and weights chosen on the scored split.
  if (key.limit !== null) args.limit = key.limit;
  if (key.selection !== null) args.selected_on = key.selection;
  // Predictions made elsewhere have no known seed: nothing to say then.
  if (row.seeds.some((seed) => seed !== null)) args.seeds = row.seeds;
  if (summary.std !== null) args.std = summary.std;
  if (name === section.primaryMetric && row.primary.interval !== null) {
    args.interval = { lower: row.primary.interval.lower, upper: row.primary.interval.upper, confidence: row.primary.interval.confidence, over: row.primary.intervalOver };
  }
  return {
    type: `${section.metric}/${name}`,
    value: summary.mean,
    name: `${name} (${section.metric} ${key.metricVersion}${row.seeds.length > 1 ? `, mean of ${row.seeds.length} seeds` : ''})`,
    args,
  };
}
