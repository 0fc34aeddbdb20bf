import test from 'ava';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { readSafetensors } from '../../models/encoders/safetensors.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';

/**
 * `vlbench run --task retrieval --model <SigLIP folder>` on the fixture SigLIP (made by
 * scripts/make-siglip-fixture.py) and a tiny SynthScenes: zero-shot with the tfjs engine and
 * with the ONNX engine (an ONNX-only copy of the folder) gives the same ranking, and ft with
 * its last block tuned trains SigLIP's towers (attention-pool head, text head) and saves a
 * SigLIP folder that loads again.
 */
const fixture = new URL('../fixtures/siglip-tiny', import.meta.url).pathname;
let root = '';
let data = '';

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vlbench-siglip-run-'));
  data = join(root, 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

test.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

const quiet = () => undefined;
const request = (extra: Partial<RunRequest>): RunRequest => ({ task: 'retrieval', dataDir: data, modelDir: fixture, method: 'zeroshot', sets: {}, seed: 1, epochs: 1, backend: 'wasm', ...extra });
const metrics = async (runDir: string) => JSON.parse(await readFile(join(runDir, 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;

test('zero-shot retrieval runs on a SigLIP folder, the same with the tfjs and the ONNX engine', async (t) => {
  const tfjs = await executeRun(request({}), { db: null, runsDir: join(root, 'runs'), log: quiet });
  const onnxOnly = join(root, 'siglip-onnx');
  for (const name of ['config.json', 'onnx', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) await cp(join(fixture, name), join(onnxOnly, name), { recursive: true });
  const onnx = await executeRun(request({ modelDir: onnxOnly }), { db: null, runsDir: join(root, 'runs'), log: quiet });
  const [a, b] = [await metrics(tfjs.runDir), await metrics(onnx.runDir)];
  t.true(Object.keys(a).length >= 1);
  for (const split of Object.keys(a)) {
    t.true(Number.isFinite(a[split].rsum));
    t.deepEqual(b[split], a[split], split);
  }
});

test('ft with the last block tuned trains the SigLIP towers and saves a SigLIP folder that loads', async (t) => {
  const outcome = await executeRun(request({ method: 'ft', sets: { batch: '8', 'encoder.train_blocks': '1' }, epochs: 2 }), { db: null, runsDir: join(root, 'runs'), log: quiet });
  t.truthy(outcome.training);
  const tunedDir = join(outcome.runDir, 'encoder');
  const config = JSON.parse(await readFile(join(tunedDir, 'config.json'), 'utf8')) as { model_type: string };
  t.is(config.model_type, 'siglip');
  const before = await readSafetensors(join(fixture, 'model.safetensors'));
  const after = await readSafetensors(join(tunedDir, 'model.safetensors'));
  t.deepEqual([...after.names].sort(), [...before.names].sort());
  const changed = (name: string) => {
    const [x, y] = [before.float32(name), after.float32(name)];
    return x.some((v, i) => v !== y[i]);
  };
  for (const name of ['vision_model.encoder.layers.1.mlp.fc1.weight', 'vision_model.head.attention.in_proj_weight', 'vision_model.head.probe', 'text_model.head.weight', 'text_model.encoder.layers.1.self_attn.q_proj.weight']) t.true(changed(name), `${name} trained`);
  for (const name of ['vision_model.encoder.layers.0.mlp.fc1.weight', 'vision_model.embeddings.patch_embedding.bias', 'text_model.embeddings.token_embedding.weight']) t.false(changed(name), `${name} frozen`);
  const encoder = await loadEncoder(tunedDir, { backend: 'wasm' });
  try {
    t.is(encoder.config.family, 'siglip');
    const embeds = await encoder.embedTexts(['a red circle']);
    t.deepEqual(embeds.shape, [1, 32]);
  } finally {
    await encoder.dispose();
  }
});
