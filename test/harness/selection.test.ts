import test from 'ava';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadedSplit, LoadOptions, Task } from '../../core/types.ts';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { holdOutByImage } from '../../harness/run-data.ts';
import { getTask } from '../../tasks/registry.ts';
import { comparabilityDifferences } from '../../leaderboard/run-record.ts';

/**
 * Issue 29: model selection never sees an evaluation example. On a real-layout dataset (the VCR
 * release fixture: vcr1annots/{train,val}.jsonl) a run without --validation-split must read no
 * label of the evaluation split until it scores it once, at the end.
 */
const release = join(import.meta.dirname, '..', 'fixtures', 'vcr-release');
const fixtureModel = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
const quiet = () => undefined;
const LABELS = new Set(['answerLabel', 'rationaleLabel']);

function request(extra: Partial<RunRequest> = {}): RunRequest {
  return { task: 'vcr', dataDir: release, modelDir: fixtureModel, trainSplit: 'train', split: 'val', method: 'ft', epochs: 1, backend: 'wasm', ...extra };
}

/**
 * Watches the task as the run uses it: every example of the evaluation split (`val`) is a proxy
 * that notes a read of its labels outside a scoring of that split, and scorings of it are counted.
 */
function watchEvaluationLabels(task: Task): { early: string[]; scorings: () => number; restore: () => void } {
  const { load, score } = task;
  const early: string[] = [];
  let scoring = false;
  let scorings = 0;
  const evaluation = new WeakSet<object>();
  task.load = async (options: LoadOptions) => {
    const split = await load.call(task, options);
    if (options.split !== 'val') return split;
    const watched = split.examples.map((example) => {
      const proxy = new Proxy(example as object, {
        get(target, key, receiver) {
          if (!scoring && LABELS.has(String(key))) early.push(`${(target as { id: string }).id}.${String(key)}`);
          return Reflect.get(target, key, receiver);
        },
      });
      evaluation.add(proxy);
      return proxy;
    });
    return { ...split, examples: watched } as LoadedSplit<unknown>;
  };
  task.score = (split, predictions, options) => {
    const ofEvaluation = split.examples.some((example) => evaluation.has(example as object));
    if (ofEvaluation) scorings += 1;
    scoring = ofEvaluation;
    try {
      return score.call(task, split, predictions, options);
    } finally {
      scoring = false;
    }
  };
  return { early, scorings: () => scorings, restore: () => Object.assign(task, { load, score }) };
}

async function configOf(runDir: string): Promise<{ hyperparameters: { selection?: { validation: { split: string; rule?: string; fingerprint: string }; onEvaluation: boolean; epochRule: string } } }> {
  return JSON.parse(await readFile(join(runDir, 'config.json'), 'utf8'));
}

test.serial('a real-layout run without --validation-split reads no evaluation label before scoring it, and records a held-out training slice', async (t) => {
  const watch = watchEvaluationLabels(getTask('vcr'));
  let outcome;
  try {
    outcome = await executeRun(request(), { db: null, runsDir: await mkdtemp(join(tmpdir(), 'vlbench-selection-')), log: quiet });
  } finally {
    watch.restore();
  }
  t.deepEqual(watch.early, [], 'evaluation labels read before the evaluation was scored');
  t.is(watch.scorings(), 1, 'the evaluation split is scored once, at the end: never as validation');
  const { selection } = (await configOf(outcome.runDir)).hyperparameters;
  t.like(selection, { validation: { split: 'train (held-out)' }, onEvaluation: false, epochRule: 'best' });
  t.regex(selection!.validation.rule!, /^held out: 1 of 2 training images \(10%/);
});

test.serial('validation = evaluation is refused unless asked for; asked for, the run is recorded, named and keyed as such', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-selection-'));
  await t.throwsAsync(executeRun(request({ validationSplit: 'val' }), { db: null, runsDir, log: quiet }), { message: /field "--validation-split": validation split "val" is the evaluation split.*--select-on-evaluation/ });
  await t.throwsAsync(executeRun(request({ selectOnEvaluation: true }), { db: null, runsDir, log: quiet }), { message: /--select-on-evaluation needs --validation-split/ });
  t.deepEqual(await readdir(runsDir), [], 'refused before any folder is written');
  const db = join(runsDir, 'board.db');
  const marked = await executeRun(request({ validationSplit: 'val', selectOnEvaluation: true, sets: { epoch_rule: 'last' } }), { db, runsDir, log: quiet });
  t.like((await configOf(marked.runDir)).hyperparameters.selection, { validation: { split: 'val' }, onEvaluation: true, epochRule: 'last' });
  t.is(marked.name, 'vcr:ft (selected on evaluation)');
  const fair = await executeRun(request(), { db, runsDir, log: quiet });
  // Not ranked as equals: the comparability key says which run chose its weights on what it reports.
  t.deepEqual(comparabilityDifferences(fair.splits[0].record!, marked.splits[0].record!), [{ field: 'selection', base: null, candidate: 'evaluation' }]);
});

test('the held-out slice is by image, deterministic, and at least one image; a split of one image is refused', (t) => {
  const examples = ['a', 'a', 'b', 'c', 'c', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'].map((image, i) => ({ id: String(i), image: `/data/images/${image}.jpg` }));
  const split = { task: 'vqa', taskVersion: '1', split: 'train', fingerprint: 'f', examples } as unknown as LoadedSplit<{ id: string; image: string }>;
  const cut = holdOutByImage(split, (e) => e.image, 0.1);
  const trainImages = new Set(cut.train.examples.map((e) => e.image));
  const heldImages = new Set(cut.validation.examples.map((e) => e.image));
  t.is(heldImages.size, 1);
  t.false([...heldImages].some((image) => trainImages.has(image)), 'no image on both sides');
  t.is(cut.train.examples.length + cut.validation.examples.length, examples.length);
  // The same images under another folder: the same slice (ranked by the path below the split's folder).
  const moved = holdOutByImage({ ...split, examples: examples.map((e) => ({ ...e, image: e.image.replace('/data/', '/elsewhere/data/') })) }, (e) => e.image, 0.1);
  t.deepEqual(moved.validation.examples.map((e) => e.id), cut.validation.examples.map((e) => e.id));
  t.throws(() => holdOutByImage({ ...split, examples: examples.slice(0, 2) }, (e) => e.image, 0.1), { message: /has 1 image\(s\): too few to hold out/ });
});
