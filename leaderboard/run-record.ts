import { createHash } from 'node:crypto';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';

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
    }),
    method: z.object({
      spec: nonEmpty.meta({ description: 'The method as written on the command line or in the run config, e.g. "finetune+villa+dann".' }),
      hyperparameters: z.record(z.string(), hyperparameterValue).meta({ description: 'Every resolved hyperparameter, defaults included.' }),
    }),
    seed: z.number().int().nullable().meta({ description: 'The run seed; null when unknown (predictions made elsewhere).' }),
    backend: z
      .enum(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu', 'onnxruntime'])
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

/** What a caller fills in; the store adds the version, the id and the time. */
export type RunRecordDraft = Omit<RunRecord, 'recordVersion' | 'id' | 'createdAt'> & Partial<Pick<RunRecord, 'id' | 'createdAt'>>;

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
  const result = RunRecordSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const record = typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' ? (value as { id: string }).id : undefined;
  const more = result.error.issues.length > 1 ? ` (and ${result.error.issues.length - 1} more problems)` : '';
  throw new InputError(`${issue.message}${more}`, { file: source, record, field: issue.path.join('.') || undefined });
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

/** The fields that decide whether two runs may be ranked against each other (DESIGN.md). */
export const COMPARABILITY_FIELDS = ['task', 'taskVersion', 'split', 'splitFingerprint', 'metricVersion'] as const;
export type ComparabilityKey = Pick<RunRecord, (typeof COMPARABILITY_FIELDS)[number]>;

export function comparabilityKey(record: RunRecord): ComparabilityKey {
  return { task: record.task, taskVersion: record.taskVersion, split: record.split, splitFingerprint: record.splitFingerprint, metricVersion: record.metricVersion };
}

export function comparabilityKeyString(key: ComparabilityKey): string {
  return JSON.stringify(COMPARABILITY_FIELDS.map((field) => key[field]));
}

export interface FieldDifference {
  field: string;
  base: string;
  candidate: string;
}

/** The comparability fields on which two runs differ; empty when they may be ranked together. */
export function comparabilityDifferences(base: RunRecord, candidate: RunRecord): FieldDifference[] {
  return COMPARABILITY_FIELDS.filter((field) => base[field] !== candidate[field]).map((field) => ({ field, base: base[field], candidate: candidate[field] }));
}

/**
 * Runs that are identical but for the seed aggregate over seeds. The model fingerprint is that
 * of the starting checkpoint, so it is part of the configuration; names, ids, times and
 * results are not.
 */
export function seedGroupKey(record: RunRecord): string {
  const { seed: _seedParameter, ...hyperparameters } = record.method.hyperparameters;
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

/** JSON with object keys sorted, so equal configurations compare equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
