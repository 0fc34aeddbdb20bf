import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { VCR_DEFAULTS } from '../../harness/adapters/vcr.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';

/**
 * A VCR run applies the VCR adapter's own defaults (issue 13, chosen on source validation):
 * fusion input norms on even with a frozen encoder, lr 1e-3, 16 epochs, 2 layers, grid pool 4,
 * the question shared by the four choice rows (issue 34);
 * `--set` and `--epochs` still override each of them, and VQA keeps the shared defaults.
 */

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-vcr-defaults-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

async function hyperparameters(extra: Partial<RunRequest>): Promise<{ training: { epochs: number; learningRate: number }; fusion: { inputNorm: boolean; layers: number; imagePool: number; tagContext?: boolean; tagProduct?: boolean; boxSine?: boolean; sharedPrefix?: boolean } }> {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-runs-'));
  const outcome = await executeRun({ task: 'vcr', dataDir: data, modelDir: fixtureModel, method: 'ft', sets: {}, seed: 1, backend: 'wasm', maxTrainExamples: 4, ...extra }, { db: null, runsDir, log: () => undefined });
  return JSON.parse(await readFile(join(outcome.runDir, 'config.json'), 'utf8')).hyperparameters;
}

test('VCR defaults: input norms on a frozen encoder, lr 1e-3, 16 epochs', async (t) => {
  t.deepEqual(VCR_DEFAULTS, { epochs: 16, learningRate: 1e-3, fusion: { hidden: 64, layers: 2, heads: 4, inputNorm: true, tagContext: true, tagProduct: true, boxSine: true, sharedPrefix: true }, imagePool: 4 });
  // The fixture CLIP's 32 px input has a 4×4 patch grid, which a pool of 4 divides.
  const resolved = await hyperparameters({});
  t.is(resolved.training.epochs, 16);
  t.is(resolved.training.learningRate, 1e-3);
  t.true(resolved.fusion.inputNorm);
  t.is(resolved.fusion.layers, 2);
  t.is(resolved.fusion.imagePool, 4);
  t.true(resolved.fusion.tagContext);
  t.true(resolved.fusion.tagProduct);
  t.true(resolved.fusion.boxSine);
  t.true(resolved.fusion.sharedPrefix);
});

test('VCR defaults give way to --set and --epochs', async (t) => {
  const resolved = await hyperparameters({ epochs: 1, sets: { 'fusion.input_norm': 'false', lr: '5e-3', 'fusion.tag_context': 'false', 'fusion.tag_product': 'false', 'fusion.box_sine': 'false', 'fusion.shared_prefix': 'false' } });
  t.is(resolved.training.epochs, 1);
  t.is(resolved.training.learningRate, 5e-3);
  t.false(resolved.fusion.inputNorm);
  // Off is recorded by absence, as for tasks that have no tags.
  t.is(resolved.fusion.tagContext, undefined);
  t.is(resolved.fusion.tagProduct, undefined);
  t.is(resolved.fusion.boxSine, undefined);
  t.is(resolved.fusion.sharedPrefix, undefined);
});
