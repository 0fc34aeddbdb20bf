import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { generateSynthScenes, readSynthManifest, synthPaths } from '../../tasks/synth/index.ts';
import { loadGqaSplit } from '../../tasks/gqa/index.ts';
import { synthLoadOptions } from '../../tasks/synth/run-splits.ts';
import { loadVqaSplit } from '../../tasks/vqa/index.ts';
import { priorPredictions, questionTypePrior } from '../../tasks/vqa/priors.ts';
import { scoreVqa } from '../../tasks/vqa/score.ts';
import { readDetectionFile } from '../../tasks/detections.ts';

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-regions-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 4, size: 32 });
});

const request = (extra: Partial<RunRequest> = {}): RunRequest => ({ task: 'vqa', dataDir: data, modelDir: fixtureModel, method: 'ft', sets: { batch: '16' }, seed: 1, epochs: 1, backend: 'wasm', ...extra });
const quiet = () => undefined;

test('SynthScenes writes the true boxes of every object and a detector that misses and invents some, its quality in the manifest', async (t) => {
  const truth = await readDetectionFile(synthPaths.detections(data, 'true'));
  const detector = await readDetectionFile(synthPaths.detections(data, 'detector'));
  // The true boxes are the scene graphs' objects, image by image.
  const graphs = await loadGqaSplit(synthLoadOptions('gqa', data, 'source', 'train'));
  const example = graphs.examples[0];
  const imageId = Number(example.imageId.split('_').at(-1));
  const objects = Object.values(example.sceneGraph!.objects).map((o) => [o.x, o.y, o.w, o.h]);
  t.deepEqual(truth.byImage.get(String(imageId))!.map((d) => d.bbox), objects);
  t.true(detector.count > 0 && detector.count !== truth.count || detector.byImage.get(String(imageId))?.[0].bbox.join() !== objects[0].join());
  const manifest = await readSynthManifest(data);
  t.truthy(manifest.detector);
  t.true(manifest.detector!.recall > 0.5 && manifest.detector!.recall < 1, `recall ${manifest.detector!.recall}`);
  t.true(manifest.detector!.precision > 0.5 && manifest.detector!.precision <= 1, `precision ${manifest.detector!.precision}`);
});

test('a VQA run over --regions boxes records the file and its fingerprint, and puts the prior beside each split', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-runs-'));
  const lines: string[] = [];
  const regionsFile = synthPaths.detections(data, 'true');
  const outcome = await executeRun(request({ regionsFile }), { db: null, runsDir, log: (line) => lines.push(line) });
  const config = JSON.parse(await readFile(join(outcome.runDir, 'config.json'), 'utf8'));
  t.is(config.hyperparameters.fusion.kind, 'relational');
  t.is(config.hyperparameters.regions.fingerprint, (await readDetectionFile(regionsFile)).fingerprint);
  t.is(config.hyperparameters.regions.features, 'crop');
  t.true(lines.some((line) => /^regions: .*true_boxes\.json \(\d+ detections; 0 image\(s\) without a box/.test(line)), lines.join('\n'));
  // The prior beside the score is the per-question-type prior of the training split, by its definition.
  const metrics = JSON.parse(await readFile(join(outcome.runDir, 'metrics.json'), 'utf8'));
  const train = await loadVqaSplit(synthLoadOptions('vqa', data, 'source', 'train'));
  const test = await loadVqaSplit(synthLoadOptions('vqa', data, 'source', 'test'));
  const prior = scoreVqa(test, priorPredictions(test.examples, questionTypePrior(train.examples))).official as { overall: number };
  t.is(metrics['test/source'].controls['prior/overall'], prior.overall);
  t.is(typeof metrics['test/source'].controls['questionType/how many'], 'number');
});

test('a regions file is checked before any work: the error names the file, the record and the field', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vlbench-bad-regions-'));
  const bad = join(dir, 'dets.json');
  await writeFile(bad, JSON.stringify([{ image_id: 1, bbox: [0, 0, 5, 5], score: 0.9 }, { image_id: 2, bbox: [0, 0, -1, 5], score: 0.9 }]));
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-runs-'));
  const error = await t.throwsAsync(executeRun(request({ regionsFile: bad }), { db: null, runsDir, log: quiet }));
  t.regex(error!.message, /dets\.json/);
  t.regex(error!.message, /record 1/);
  t.regex(error!.message, /bbox/);
  // Boxes of no image of the run: refused by name, not silently the grid.
  const foreign = join(dir, 'foreign.json');
  await writeFile(foreign, JSON.stringify([{ image_id: 99999, bbox: [0, 0, 5, 5], score: 0.9 }]));
  await t.throwsAsync(executeRun(request({ regionsFile: foreign }), { db: null, runsDir, log: quiet }), { message: /none of its 1 detections is of an image of this run/ });
  // A box past its image's border.
  const beyond = join(dir, 'beyond.json');
  await writeFile(beyond, JSON.stringify([{ image_id: 1, bbox: [20, 20, 30, 30], score: 0.9 }]));
  await t.throwsAsync(executeRun(request({ regionsFile: beyond }), { db: null, runsDir, log: quiet }), { message: /reaches past its 32×32 image/ });
  await t.throwsAsync(executeRun(request({ task: 'vcr', regionsFile: beyond }), { db: null, runsDir, log: quiet }), { message: /vcr does not read region boxes/ });
});
