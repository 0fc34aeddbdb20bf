import test from 'ava';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { ADVERSARIAL_DEFAULTS } from '../../models/objectives/adversarial.ts';

/**
 * Issue 29: an objective shows that it acts. An `ft+adv` run with the default settings records,
 * per step, ‖δ‖/‖x‖ of each perturbed modality and a KL term that is not ~0, on a frozen encoder
 * (δ at the fusion's input) and a tuned one (δ at the first trainable block), in curve.json and
 * in the run log; a run whose perturbation is too small to move a prediction ends with a warning.
 */
const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-objectives-act-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

async function advRun(sets: Record<string, string>) {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-objectives-act-runs-'));
  const lines: string[] = [];
  const request: RunRequest = { task: 'vqa', dataDir: data, modelDir: fixtureModel, method: 'ft+adv', sets: { batch: '16', ...sets }, seed: 1, epochs: 1, backend: 'wasm' };
  const outcome = await executeRun(request, { db: null, runsDir, log: (line) => lines.push(line) });
  const curve = JSON.parse(await readFile(join(outcome.runDir, 'curve.json'), 'utf8')) as Record<string, number>[];
  return { curve, lines };
}

// Two ascent steps of a relative η from δ = 0 along one direction at most: ‖δ‖/‖x‖ ≤ 2η, and close to it.
const expectedRatio = (ADVERSARIAL_DEFAULTS.steps - 1) * ADVERSARIAL_DEFAULTS.eta;

for (const [path, sets] of [
  ['frozen', {}],
  ['tuned', { 'encoder.train_blocks': '1' }],
] as const) {
  test(`ft+adv on a ${path} encoder logs ‖δ‖/‖x‖ of both modalities and a KL term that is not ~0`, async (t) => {
    const { curve, lines } = await advRun(sets);
    t.true(curve.length > 1);
    for (const row of curve) {
      for (const modality of ['text', 'image']) {
        const ratio = row[`adv_delta_${modality}`];
        t.true(ratio > 0.9 * expectedRatio && ratio <= expectedRatio * 1.0001, `${modality} ‖δ‖/‖x‖ ${ratio} at step ${row.step}`);
      }
    }
    const kl = curve.map((row) => row.adv_kl);
    t.true(Math.max(...kl) > 1e-6, `KL ${kl.join(', ')}`);
    // The run log has a line per epoch with the means, and adv's summary; no inert warning.
    t.true(lines.some((line) => /^step \d+\/\d+ \(epoch 1.*adv_kl .*adv_delta_text 0\.0\d+.*adv_delta_image 0\.0\d+/.test(line)), lines.join('\n'));
    t.true(lines.some((line) => /^adv: ‖δ‖\/‖x‖ text 0\.0\d+, image 0\.0\d+; KL term mean/.test(line)), lines.join('\n'));
    t.false(lines.some((line) => line.startsWith('warning:')), lines.join('\n'));
  });
}

test('an adv whose perturbation moves nothing (absolute η = 1e-6) ends its run with an inert warning', async (t) => {
  const { curve, lines } = await advRun({ 'adv.relative': 'false', 'adv.eta': '1e-6' });
  t.true(curve.every((row) => row.adv_kl < 1e-6));
  t.regex(lines.at(-1) ?? '', /^warning: adv stayed inert: its KL term stayed below 1\.0e-6/);
});
