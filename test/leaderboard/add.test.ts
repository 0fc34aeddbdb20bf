import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { InputError } from '../../core/errors.ts';
import type { LoadedSplit, ScoreReport, Task } from '../../core/types.ts';
import { registerLeaderboard } from '../../cli/commands/leaderboard.ts';
import { exampleScores, listRuns, openLeaderboard } from '../../leaderboard/store.ts';
import { temporaryFolder } from './synthetic-runs.ts';

/** A task small enough to read in one glance: answers.json holds {id: answer}; predictions are [{id, answer}]. */
interface ToyExample {
  id: string;
  answer: string;
}
const toyTask: Task<ToyExample, Map<string, string>> = {
  name: 'toy',
  version: '3',
  description: 'exact-match toy task',
  splits: ['val'],
  async load({ dataDir, split }): Promise<LoadedSplit<ToyExample>> {
    const file = join(dataDir!, `${split}.json`);
    const bytes = readFileSync(file);
    const answers = JSON.parse(bytes.toString('utf8')) as Record<string, string>;
    return {
      task: 'toy',
      taskVersion: '3',
      split,
      fingerprint: createHash('sha256').update(bytes).digest('hex'),
      files: [file],
      examples: Object.entries(answers).map(([id, answer]) => ({ id, answer })),
    };
  },
  async readPredictions(split, file) {
    const entries = JSON.parse(readFileSync(file, 'utf8')) as { id: string; answer: string }[];
    const predictions = new Map(entries.map((entry) => [entry.id, entry.answer]));
    const missing = split.examples.filter((example) => !predictions.has(example.id));
    if (missing.length) throw new InputError(`missing ${missing.length} predictions`, { file });
    return predictions;
  },
  score(split, predictions): ScoreReport {
    const perExample = split.examples.map((example) => ({ id: example.id, score: predictions.get(example.id) === example.answer ? 100 : 0 }));
    const accuracy = perExample.reduce((sum, e) => sum + e.score, 0) / perExample.length;
    return { metric: 'toy-accuracy', metricVersion: '1', primary: 'accuracy', metrics: { accuracy }, official: { accuracy }, perExample };
  },
  async writeSubmission() {},
};

function program(lookupTask?: (name: string) => Task): Command {
  // As harness/cli.ts builds the root: positional options, so `add` gets its own --task/--db.
  const root = new Command().enablePositionalOptions().exitOverride();
  registerLeaderboard(root, lookupTask ? { lookupTask } : {});
  return root;
}

async function quietly<T>(work: () => Promise<T>): Promise<{ value: T; stdout: string }> {
  const written: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    return { value: await work(), stdout: written.join('') };
  } finally {
    process.stdout.write = write;
  }
}

test.serial('leaderboard add scores a predictions file through the task and records it', async (t) => {
  const folder = temporaryFolder('add');
  writeFileSync(join(folder, 'val.json'), JSON.stringify({ a: 'cat', b: 'dog', c: 'two', d: 'red' }));
  const predictions = join(folder, 'predictions.json');
  writeFileSync(predictions, JSON.stringify([{ id: 'a', answer: 'cat' }, { id: 'b', answer: 'cow' }, { id: 'c', answer: 'two' }, { id: 'd', answer: 'red' }]));
  const db = join(folder, 'board.db');
  const lookups: string[] = [];
  const { stdout } = await quietly(() =>
    program((name) => (lookups.push(name), toyTask)).parseAsync(
      ['leaderboard', 'add', '--task', 'toy', '--data', folder, '--predictions', predictions, '--name', 'pytorch-baseline', '--model', 'blip-base', '--seed', '7', '--db', db],
      { from: 'user' },
    ),
  );
  t.deepEqual(lookups, ['toy']);
  t.regex(stdout, /recorded run \S+ "pytorch-baseline": toy val, accuracy 75\.00/);
  const store = await openLeaderboard(db, { create: false });
  const [{ record }] = await listRuns(store);
  t.like(record, {
    name: 'pytorch-baseline',
    task: 'toy',
    taskVersion: '3',
    split: 'val',
    metric: 'toy-accuracy',
    primaryMetric: 'accuracy',
    metrics: { accuracy: 75 },
    model: { name: 'blip-base', fingerprint: null },
    seed: 7,
    backend: null,
    predictions: { path: predictions, sha256: createHash('sha256').update(readFileSync(predictions)).digest('hex') },
  });
  t.is(record.splitFingerprint, createHash('sha256').update(readFileSync(join(folder, 'val.json'))).digest('hex'));
  t.deepEqual(Object.keys(record.timings).sort(), ['load', 'readPredictions', 'score']);
  t.deepEqual(await exampleScores(store, record.id), [
    { id: 'a', score: 100 },
    { id: 'b', score: 0 },
    { id: 'c', score: 100 },
    { id: 'd', score: 100 },
  ]);
  await store.close();
});

test.serial('leaderboard add refuses a missing predictions file and records nothing', async (t) => {
  const folder = temporaryFolder('add');
  writeFileSync(join(folder, 'val.json'), '{"a": "cat"}');
  const db = join(folder, 'board.db');
  await t.throwsAsync(
    program(() => toyTask).parseAsync(['leaderboard', 'add', '--task', 'toy', '--data', folder, '--predictions', join(folder, 'nope.json'), '--name', 'x', '--db', db], { from: 'user' }),
    { instanceOf: InputError, message: /nope\.json: expected a predictions file/ },
  );
  const store = await openLeaderboard(db, { create: true });
  t.is((await listRuns(store)).length, 0);
  await store.close();
});

test.serial('vlbench leaderboard add scores SynthScenes VQA predictions through the task registry, then compare and the board read them', async (t) => {
  const { generateSynthScenes, synthPaths } = await import('../../tasks/synth/index.ts');
  const { main } = await import('../../cli/program.ts');
  const root = temporaryFolder('add-synth');
  const synth = join(root, 'synth');
  await generateSynthScenes({ outDir: synth, images: 8, seed: 3, size: 32, domains: ['source'] });
  const questions = JSON.parse(readFileSync(synthPaths.vqaQuestions(synth, 'val_source'), 'utf8')).questions as { question_id: number }[];
  const yes = join(root, 'yes.json');
  const no = join(root, 'no.json');
  writeFileSync(yes, JSON.stringify(questions.map((q) => ({ question_id: q.question_id, answer: 'yes' }))));
  writeFileSync(no, JSON.stringify(questions.map((q) => ({ question_id: q.question_id, answer: 'no' }))));
  const db = join(root, 'board.db');
  const add = (file: string, name: string) =>
    quietly(() => main(['leaderboard', 'add', '--task', 'vqa', '--data', synthPaths.vqaDir(synth), '--split', 'val_source', '--predictions', file, '--name', name, '--db', db]));
  t.is((await add(yes, 'always-yes')).value, 0);
  t.is((await add(no, 'always-no')).value, 0);
  const store = await openLeaderboard(db, { create: false });
  const runs = await listRuns(store);
  t.deepEqual(runs.map((r) => [r.record.task, r.record.metric, r.record.primaryMetric, r.exampleCount]), [
    ['vqa', 'vqa-accuracy', 'overall', questions.length],
    ['vqa', 'vqa-accuracy', 'overall', questions.length],
  ]);
  await store.close();
  const board = await quietly(() => main(['leaderboard', '--db', db, '--format', 'json', '--resamples', '100']));
  t.is(board.value, 0);
  t.is(JSON.parse(board.stdout).sections[0].rows.length, 2);
  // The fixture's val_source split (generator 1.4.0, seed 3, 8 images: one val image) holds 10
  // questions; four are yes/no. Official accuracy, acc = mean over annotators i of
  // min(1, #{j ≠ i : answer_j == prediction} / 3), answers normalised where they differ:
  //  - 74 "no.|no|No|no|no|no|yes|No|no|no" → 9 × no, 1 × yes: "yes" scores 9 × 1/3 / 10 = 30, "no" 100;
  //  - 75 ten × yes: "yes" 100, "no" 0;   77 ten × no: "yes" 0, "no" 100;
  //  - 78 "no|no.|…|nope" → 9 × no, nope: "yes" 0, "no" 100;   the six others: 0 for both.
  // always-yes (30 + 100) / 10 = 13; always-no (100 + 100 + 100) / 10 = 30.
  t.is(questions.length, 10);
  t.deepEqual(runs.map((r) => r.record.metrics.overall), [13, 30]);
  const compare = async (base: string, candidate: string) => {
    const result = await quietly(() => main(['compare', base, candidate, '--db', db, '--format', 'json', '--resamples', '100']));
    process.exitCode = undefined;
    return { code: result.value, report: JSON.parse(result.stdout) };
  };
  // Per-example differences (candidate − base) are ±[70, −100, 100, 100] on the four yes/no
  // questions and 0 on the six others: a mean of ±17 from four questions that disagree in sign, so
  // the paired interval straddles 0 both ways and neither direction is a significant change.
  const better = await compare('always-yes', 'always-no');
  t.is(better.code, 0);
  t.like(better.report, { difference: 17, exitCode: 0, paired: { examples: 10, estimate: 17 } });
  t.true(better.report.paired.lower < 0 && better.report.paired.upper > 17);
  const worse = await compare('always-no', 'always-yes');
  t.is(worse.code, 0);
  t.like(worse.report, { difference: -17, exitCode: 0, regression: false, paired: { estimate: -17 } });
  t.true(worse.report.paired.upper > 0, 'the drop of 17 is not significant on 10 questions');
});
