import test from 'ava';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';

/**
 * Issue 29: mmd and dann align target images WITH target-domain questions, unlabelled. Proof
 * that no target answer is read: a run whose target answers are deleted (VQA's annotations
 * file) or replaced by nonsense (GQA keeps answers inside its questions file) trains exactly
 * as the intact run does; proof that the target questions are what is read: changing them
 * changes the alignment. Real datasets name theirs with --target-questions.
 */
const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let root = '';
let data = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vlbench-target-questions-'));
  data = join(root, 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

async function copyOf(name: string): Promise<string> {
  const copy = join(root, name);
  await cp(data, copy, { recursive: true });
  return copy;
}

async function curveOf(request: Partial<RunRequest>): Promise<Record<string, number>[]> {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-target-questions-runs-'));
  const full: RunRequest = { task: 'vqa', dataDir: data, modelDir: fixtureModel, method: 'ft+mmd+dann', sets: { batch: '16' }, seed: 1, epochs: 1, backend: 'wasm', ...request };
  const outcome = await executeRun(full, { db: null, runsDir, log: () => undefined });
  return JSON.parse(await readFile(join(outcome.runDir, 'curve.json'), 'utf8'));
}

const alignment = (curve: Record<string, number>[]) => curve.map((row) => [row.loss, row.mmd2, row.dann_accuracy]);

test('VQA: target answers are never read; the target questions are', async (t) => {
  const intact = await curveOf({});
  t.true(intact.every((row) => row.mmd2 > 0));
  // Without the target training split's annotations the run trains exactly the same.
  const unlabelled = await copyOf('vqa-unlabelled');
  await rm(synthPaths.vqaAnnotations(unlabelled, 'train_target'));
  t.deepEqual(alignment(await curveOf({ dataDir: unlabelled })), alignment(intact));
  // One question for every target image: the alignment sees it.
  const oneQuestion = await copyOf('vqa-one-question');
  const file = synthPaths.vqaQuestions(oneQuestion, 'train_target');
  const questions = JSON.parse(await readFile(file, 'utf8'));
  for (const q of questions.questions) q.question = 'Is there a shape?';
  await writeFile(file, JSON.stringify(questions));
  t.notDeepEqual(alignment(await curveOf({ dataDir: oneQuestion })), alignment(intact));
});

test('a real-layout VQA run reads --target-questions (answers absent) with its images under --target', async (t) => {
  const real = await copyOf('vqa-real-layout');
  await rm(synthPaths.vqaAnnotations(real, 'train_target'));
  const curve = await curveOf({
    dataDir: join(real, 'vqa'),
    trainSplit: 'train_source',
    validationSplit: 'val_source',
    split: 'test_source',
    imagesDir: synthPaths.imagesRoot(real),
    targetDir: synthPaths.imagesRoot(real),
    targetQuestionsFile: synthPaths.vqaQuestions(real, 'train_target'),
  });
  t.true(curve.length > 0 && curve.every((row) => row.mmd2 > 0 && row.dann_accuracy >= 0));
  await t.throwsAsync(curveOf({ dataDir: join(real, 'vqa'), trainSplit: 'train_source', split: 'test_source', imagesDir: synthPaths.imagesRoot(real), targetQuestionsFile: synthPaths.vqaQuestions(real, 'train_target') }), {
    message: /--target-questions needs --target DIR/,
  });
  // A task that does not pair them refuses the file before any work.
  await t.throwsAsync(curveOf({ task: 'retrieval', method: 'ft+mmd', dataDir: join(real, 'retrieval'), trainSplit: 'train', split: 'test', targetDir: synthPaths.imagesRoot(real), targetQuestionsFile: synthPaths.vqaQuestions(real, 'train_target') }), {
    message: /--target-questions: retrieval does not pair target images with target questions/,
  });
});

test('GQA: target answers inside the questions file change nothing', async (t) => {
  const intact = await curveOf({ task: 'gqa', method: 'ft+mmd' });
  const poisoned = await copyOf('gqa-poisoned');
  const file = synthPaths.gqaQuestions(poisoned, 'train_target');
  const questions = JSON.parse(await readFile(file, 'utf8')) as Record<string, { answer: string; fullAnswer: string }>;
  for (const q of Object.values(questions)) Object.assign(q, { answer: 'zzz', fullAnswer: 'zzz' });
  await writeFile(file, JSON.stringify(questions));
  t.deepEqual(alignment(await curveOf({ task: 'gqa', method: 'ft+mmd', dataDir: poisoned })), alignment(intact));
});

test('the run records which target questions the alignment read', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-target-questions-runs-'));
  const outcome = await executeRun({ task: 'vqa', dataDir: data, modelDir: fixtureModel, method: 'ft+mmd', sets: { batch: '16' }, seed: 1, epochs: 1, backend: 'wasm' }, { db: null, runsDir, log: () => undefined });
  const config = JSON.parse(await readFile(join(outcome.runDir, 'config.json'), 'utf8'));
  const questions = JSON.parse(await readFile(synthPaths.vqaQuestions(data, 'train_target'), 'utf8')).questions;
  t.is(config.hyperparameters.targetQuestions.questions, questions.length);
  t.regex(config.hyperparameters.targetQuestions.fingerprint, /^[0-9a-f]{16,}$/);
});
