import { createHash } from 'node:crypto';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import { BACKEND_NAMES, type ScoreOptions } from '../core/types.ts';

/**
 * The run record: everything needed to reproduce a leaderboard number and to decide
 * which numbers may be ranked against each other. One record per run, versioned so old
 * databases stay readable when fields are added.
 */
export const RUN_RECORD_VERSION = 1;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in lowercase hex (64 characters)');
const nonEmpty = z.string().min(1);

const hyperparameterValue = z.json();

export const TrainingCurvePointSchema = z
  .object({
    step: z.number().int().nonnegative(),
    loss: z.number(),
  })
  // Extra series logged at the same step (e.g. "valAccuracy", "learningRate") ride along as numbers.
  .catchall(z.number())
  .meta({ description: 'One logged training step: the loss and any other numeric series logged at that step.' });

/**
 * Scoring options that change the numbers for the same predictions: part of the comparability
 * key. Every field has the value a record written without it was scored with, so older records
 * read as what they are (see `withScoringOfOlderRecords`).
 */
export const RunScoringSchema = z
  .object({
    normalization: z
      .enum(['current', 'legacy'])
      .default('current')
      .meta({
        description:
          'VQA answer normalisation: "current" is the official evaluator since its 2021 fix; "legacy" normalises the prediction even when all 10 answers agree (the pre-2021 evaluator, LAVIS). "current" for tasks without normalisation modes.',
      }),
    folds: z
      .int()
      .positive()
      .default(1)
      .meta({ description: 'Retrieval: the images were cut into this many consecutive folds, each ranked alone, and the recalls averaged (COCO 1K = 5); 1 ranks the whole split at once (COCO 5K). 1 for other tasks.' }),
  })
  .default({ normalization: 'current', folds: 1 })
  .meta({ description: 'Scoring options that change the numbers for the same predictions; part of the comparability key.' });

/**
 * What the predictions were computed on, besides the backend: scores drift with these across
 * machines (lm-eval #1081, #1719), so the board shows them and `compare` names a difference.
 * Informational, never part of the comparability key; each field is absent when unknown.
 */
export const RunExecutionSchema = z
  .object({
    device: nonEmpty.max(200).optional().meta({ description: 'The device that ran the model, as the backend names it, e.g. "cpu (16 cores)", "NVIDIA H200", "wasm (1 thread)".' }),
    dtype: nonEmpty.max(40).optional().meta({ description: 'Numeric type of the weights and activations at inference, e.g. "float32", "float16".' }),
    batchSize: z.int().positive().optional().meta({ description: 'Examples per forward pass when predicting (padding and kernel choice depend on it).' }),
    shardCount: z.int().positive().optional().meta({ description: 'Number of shards the evaluation examples were split into (1 = not sharded).' }),
  })
  .strict()
  .meta({ description: 'The machine-dependent settings the predictions were computed with; absent fields are unknown.' });

export type RunScoring = z.infer<typeof RunScoringSchema>;
export type RunExecution = z.infer<typeof RunExecutionSchema>;

export const RunRecordSchema = z
  .object({
    recordVersion: z.literal(RUN_RECORD_VERSION),
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_", "-" (at most 128)'),
    name: nonEmpty.max(200),
    createdAt: z.iso.datetime(),
    task: nonEmpty,
    taskVersion: nonEmpty,
    split: nonEmpty,
    splitFingerprint: sha256Hex.meta({ description: 'sha256 over the annotation files and the ordered image id list (LoadedSplit.fingerprint).' }),
    metric: nonEmpty,
    metricVersion: nonEmpty,
    primaryMetric: nonEmpty.meta({ description: 'The key of `metrics` that ranks runs; per-example scores are contributions to it.' }),
    model: z.object({
      name: nonEmpty,
      fingerprint: sha256Hex.nullable().meta({
        description:
          'sha256 of the weight files and config the run started from (the same for every seed of one configuration); null when the predictions were made outside vlbench.',
      }),
      tunedFingerprint: sha256Hex.optional().meta({
        description: 'sha256 of the encoder the run fine-tuned (its <run>/encoder folder), when the encoder trained; differs per seed, so it is not part of any grouping.',
      }),
    }),
    method: z.object({
      spec: nonEmpty.meta({ description: 'The method as written on the command line or in the run config, e.g. "finetune+villa+dann".' }),
      hyperparameters: z.record(z.string(), hyperparameterValue).meta({ description: 'Every resolved hyperparameter, defaults included.' }),
    }),
    seed: z.number().int().nullable().meta({ description: 'The run seed; null when unknown (predictions made elsewhere).' }),
    backend: z
      .enum(BACKEND_NAMES)
      .nullable()
      .meta({ description: 'The backend that computed the predictions; null when they were made outside vlbench.' }),
    versions: z
      .object({ vlbench: nonEmpty, node: nonEmpty, tfjs: nonEmpty, transformersJs: nonEmpty, sharp: nonEmpty })
      .catchall(z.string()),
    gitCommit: z.string().regex(/^[0-9a-f]{7,64}$/).nullable(),
    timings: z.record(z.string(), z.number().nonnegative()).meta({ description: 'Wall time per phase, in seconds.' }),
    metrics: z.record(z.string(), z.number()).meta({ description: 'Flat metrics on the official scale (×100 for percentages).' }),
    curve: z.array(TrainingCurvePointSchema).optional().meta({ description: 'Training curve, in step order.' }),
    predictions: z
      .object({ path: nonEmpty, sha256: sha256Hex })
      .nullable()
      .meta({ description: 'The predictions file the metrics were computed from, when there is one.' }),
    perExamplePath: z.string().nullable().meta({ description: 'A file of per-example scores outside the database, when the run wrote one.' }),
    scoring: RunScoringSchema,
    limit: z
      .int()
      .positive()
      .nullable()
      .default(null)
      .meta({ description: 'A smoke run (`--limit N`): only the first N examples of the split, in file order, were scored; null for the whole split. Part of the comparability key.' }),
    execution: RunExecutionSchema.optional(),
  })
  .superRefine((record, context) => {
    if (!(record.primaryMetric in record.metrics)) {
      context.addIssue({ code: 'custom', path: ['primaryMetric'], message: `names no key of metrics (keys: ${Object.keys(record.metrics).join(', ') || 'none'})` });
    }
    const curve = record.curve ?? [];
    for (let i = 1; i < curve.length; i++) {
      if (curve[i].step <= curve[i - 1].step) {
        context.addIssue({ code: 'custom', path: ['curve', i, 'step'], message: `steps must increase (step ${curve[i].step} after ${curve[i - 1].step})` });
        break;
      }
    }
  });

export type RunRecord = z.infer<typeof RunRecordSchema>;
export type TrainingCurvePoint = z.infer<typeof TrainingCurvePointSchema>;

/**
 * What a caller fills in; the store adds the version, the id and the time. Without `scoring`
 * the run counts as scored with the defaults (current normalisation, one fold); without `limit`,
 * as scored on the whole split.
 */
export type RunRecordDraft = Omit<RunRecord, 'recordVersion' | 'id' | 'createdAt' | 'scoring' | 'limit'> &
  Partial<Pick<RunRecord, 'id' | 'createdAt' | 'limit'>> & { scoring?: Partial<RunScoring> };

/** The `scoring` of a record from the options the task scored with (the same ScoreOptions passed to `task.score`). */
export function recordedScoring(options: ScoreOptions = {}): RunScoring {
  return { normalization: options.legacyNormalization ? 'legacy' : 'current', folds: options.folds ?? 1 };
}

/** The JSON Schema committed as leaderboard/run-record.schema.json, for tools outside vlbench. */
export function runRecordJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(RunRecordSchema, { target: 'draft-2020-12' }),
    $id: 'https://vlbench.dev/schemas/run-record.schema.json',
    title: `vlbench run record, version ${RUN_RECORD_VERSION}`,
  };
}

/** Validates one record; a bad one is an InputError that names where it came from and the first bad field. */
export function parseRunRecord(value: unknown, source: string): RunRecord {
  const result = RunRecordSchema.safeParse(withScoringOfOlderRecords(value));
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const record = typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' ? (value as { id: string }).id : undefined;
  const more = result.error.issues.length > 1 ? ` (and ${result.error.issues.length - 1} more problems)` : '';
  throw new InputError(`${issue.message}${more}`, { file: source, record, field: issue.path.join('.') || undefined });
}

/**
 * Records written before `scoring` existed say how they were scored elsewhere: the legacy VQA
 * mode was always recorded as metric "vqa-accuracy-legacy", and the retrieval scorer always put
 * its fold count in metrics.folds. Reading them this way (instead of a database migration) works
 * the same on every store engine and for records that arrive as JSON (copies, exports), and never
 * rewrites what was recorded.
 */
function withScoringOfOlderRecords(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || 'scoring' in value) return value;
  const record = value as { metric?: unknown; metrics?: unknown };
  const folds = typeof record.metrics === 'object' && record.metrics !== null ? (record.metrics as Record<string, unknown>).folds : undefined;
  return {
    ...value,
    scoring: {
      normalization: record.metric === 'vqa-accuracy-legacy' ? 'legacy' : 'current',
      folds: typeof folds === 'number' && Number.isInteger(folds) && folds > 0 ? folds : 1,
    },
  };
}

/**
 * A run id that says when the run was made and is unique without drawing randomness:
 * the content hash covers the record, the process and a per-process counter.
 */
let runIdCounter = 0;
export function newRunId(createdAt: string, draft: unknown): string {
  const stamp = createdAt.replace(/[-:]/g, '').replace(/\.\d+Z$|Z$/, '').replace('T', '-');
  const hash = createHash('sha256')
    .update(JSON.stringify(draft))
    .update(`${process.pid}:${process.hrtime.bigint()}:${runIdCounter++}`)
    .digest('hex')
    .slice(0, 10);
  return `${stamp}-${hash}`;
}

/**
 * The fields that decide whether two runs may be ranked against each other (DESIGN.md): the
 * data (task, its version, split, split fingerprint), everything that turns the same
 * predictions into a number (the metric, its version, the scoring options), and whether the
 * weights were selected on the very split scored (`selection`: "evaluation", else null), which
 * a run does only when asked (`vlbench run --select-on-evaluation`). `limit` (a smoke run over
 * the first N examples) also changes the fingerprint; it is a field of its own so that `compare`
 * names it rather than an opaque hash.
 */
export const COMPARABILITY_FIELDS = ['task', 'taskVersion', 'split', 'splitFingerprint', 'limit', 'metric', 'metricVersion', 'scoring.normalization', 'scoring.folds', 'selection'] as const;
export type ComparabilityField = (typeof COMPARABILITY_FIELDS)[number];

export interface ComparabilityKey {
  task: string;
  taskVersion: string;
  split: string;
  splitFingerprint: string;
  limit: number | null;
  metric: string;
  metricVersion: string;
  scoring: RunScoring;
  selection: 'evaluation' | null;
}

export function comparabilityKey(record: RunRecord): ComparabilityKey {
  return {
    task: record.task,
    taskVersion: record.taskVersion,
    split: record.split,
    splitFingerprint: record.splitFingerprint,
    limit: record.limit ?? null,
    metric: record.metric,
    metricVersion: record.metricVersion,
    scoring: { normalization: record.scoring.normalization, folds: record.scoring.folds },
    selection: selectedOnEvaluation(record) ? 'evaluation' : null,
  };
}

/** Whether the run chose its weights on the split it is scored on (harness/run.ts records hyperparameters.selection). */
export function selectedOnEvaluation(record: RunRecord): boolean {
  const selection = (record.method.hyperparameters as { selection?: { onEvaluation?: unknown } }).selection;
  return selection?.onEvaluation === true;
}

/** A field of a key or record by its dotted path ("scoring.folds"). */
function fieldValue(value: object, path: string): string | number | null {
  let current: unknown = value;
  for (const part of path.split('.')) current = current === null || current === undefined ? undefined : (current as Record<string, unknown>)[part];
  return current === undefined ? null : (current as string | number | null);
}

export function comparabilityKeyString(key: ComparabilityKey): string {
  return JSON.stringify(COMPARABILITY_FIELDS.map((field) => fieldValue(key, field)));
}

export interface FieldDifference {
  /** Dotted path of the record field, e.g. "splitFingerprint", "scoring.normalization". */
  field: string;
  /** The value in each run; null where the run does not say. */
  base: string | number | null;
  candidate: string | number | null;
}

/** The comparability fields on which two runs differ; empty when they may be ranked together. */
export function comparabilityDifferences(base: RunRecord, candidate: RunRecord): FieldDifference[] {
  return differencesIn(COMPARABILITY_FIELDS, comparabilityKey(base), comparabilityKey(candidate));
}

/**
 * What can make the same method score differently on another machine (issue 14): the backend
 * and the execution settings. Not part of the comparability key: a team moving its CI to new
 * hardware must still be able to gate on it, and a submission scored from a predictions file
 * has none of them. `compare` names a difference so a changed number can be traced to it.
 */
export const EXECUTION_FIELDS = ['backend', 'execution.device', 'execution.dtype', 'execution.batchSize', 'execution.shardCount'] as const;

export function executionDifferences(base: RunRecord, candidate: RunRecord): FieldDifference[] {
  return differencesIn(EXECUTION_FIELDS, base, candidate);
}

function differencesIn(fields: readonly string[], base: object, candidate: object): FieldDifference[] {
  return fields
    .map((field) => ({ field, base: fieldValue(base, field), candidate: fieldValue(candidate, field) }))
    .filter((difference) => difference.base !== difference.candidate);
}

/**
 * Runs that are identical but for the seed aggregate over seeds. The model fingerprint is that
 * of the starting checkpoint, so it is part of the configuration; names, ids, times and
 * results are not.
 */
export function seedGroupKey(record: RunRecord): string {
  const hyperparameters = withoutRunSeed(record.method.hyperparameters);
  return JSON.stringify([
    comparabilityKeyString(comparabilityKey(record)),
    record.metric,
    record.primaryMetric,
    record.model.name,
    record.model.fingerprint,
    record.method.spec,
    canonicalJson(hyperparameters),
    record.backend,
    // Without a known seed there is nothing to tell seed replicates from duplicate submissions.
    record.seed === null ? record.id : null,
  ]);
}

/**
 * The hyperparameters less the run's own seed, wherever a record carries it: `seed` at the top
 * (hand-written and older records) and `training.seed` (what `vlbench run` records, its
 * training settings in full). Other seeds stay: a seed that is not the run's is configuration.
 */
export function withoutRunSeed(hyperparameters: Record<string, unknown>): Record<string, unknown> {
  const { seed: _seed, ...rest } = hyperparameters;
  const training = rest.training;
  if (training !== null && typeof training === 'object' && !Array.isArray(training) && 'seed' in training) {
    const { seed: _trainingSeed, ...settings } = training as Record<string, unknown>;
    rest.training = settings;
  }
  return rest;
}

/** JSON with object keys sorted, so equal configurations compare equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
