import test, { type ExecutionContext } from 'ava';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../core/random.ts';
import { DomainDiscriminator } from '../../models/heads/domain-discriminator.ts';
import { SceneGraphHead } from '../../models/heads/scene-graph-head.ts';
import { ADVERSARIAL_DEFAULTS, adversarialGradients } from '../../models/objectives/adversarial.ts';
import { DANN_DEFAULTS, dannLoss } from '../../models/objectives/dann.ts';
import { infoNceLoss } from '../../models/objectives/info-nce.ts';
import { multiKernelMmd } from '../../models/objectives/mmd.ts';
import { multipleChoiceLoss } from '../../models/objectives/multiple-choice-ce.ts';
import { sceneGraphObjective, type SceneGraph } from '../../models/objectives/scene-graph.ts';
import { softScoreBceLoss } from '../../models/objectives/soft-score-bce.ts';
import { assertClose, hostCopies, onBackend, wave, webGpuTest, type Backend } from './webgpu-support.ts';

/**
 * Every objective's loss and gradients on webgpu against wasm, on tiny inputs (the same
 * numbers on both backends). Tolerances: losses within 1e-6 + 1e-5·|wasm|, gradients within
 * 1e-6 + 1e-4·max|wasm| of each tensor (see webgpu.test.ts for why and what was measured).
 */
const LOSS = { absolute: 1e-6, relative: 1e-5 };
const GRADIENT = { absolute: 1e-6, relative: 1e-4 };

const gpuTest = webGpuTest(test, 'test/backends/webgpu-objectives.test.ts');

type Outputs = Record<string, Float32Array>;

/** Runs `objective` on wasm, then on webgpu, and compares every output it names. */
async function assertParity(t: ExecutionContext, objective: () => Outputs | Promise<Outputs>): Promise<void> {
  const results: Partial<Record<Backend, Outputs>> = {};
  for (const backend of ['wasm', 'webgpu'] as const) results[backend] = await onBackend(backend, objective);
  const { wasm, webgpu } = results as Record<Backend, Outputs>;
  t.deepEqual(Object.keys(webgpu).sort(), Object.keys(wasm).sort());
  for (const name of Object.keys(wasm)) assertClose(t, webgpu[name], wasm[name], name.startsWith('∂') ? GRADIENT : LOSS, name);
}

/** The loss and ∂loss/∂x for each named input. */
function lossAndGradients(inputs: Record<string, tf.Tensor>, loss: (...x: tf.Tensor[]) => tf.Scalar): Outputs {
  return tf.tidy(() => {
    const names = Object.keys(inputs);
    const { value, grads } = tf.valueAndGrads((...x: tf.Tensor[]) => loss(...x))(names.map((n) => inputs[n]));
    return hostCopies({ loss: value, ...Object.fromEntries(names.map((n, i) => [`∂${n}`, grads[i]])) });
  });
}

gpuTest('soft-score BCE (VQA answers) through a linear read-out', async (t) => {
  await assertParity(t, () =>
    lossAndGradients({ features: tf.tensor2d(wave(4 * 6, 0.1, 2), [4, 6]), weights: tf.tensor2d(wave(6 * 5, 0.7), [6, 5]) }, (features, weights) =>
      softScoreBceLoss(tf.matMul(features, weights) as tf.Tensor2D, tf.tensor2d([1, 0.3, 0, 0, 0, 0, 0.9, 0.6, 0, 0, 0, 0, 0, 0, 1, 0.3, 0.3, 0, 0, 0], [4, 5])),
    ),
  );
});

gpuTest('multiple-choice CE (VCR answers) with label smoothing', async (t) => {
  await assertParity(t, () => lossAndGradients({ scores: tf.tensor2d(wave(3 * 4, 0.3, 3), [3, 4]) }, (scores) => multipleChoiceLoss(scores as tf.Tensor2D, [3, 0, 2], { labelSmoothing: 0.1 })));
});

gpuTest('InfoNCE with a learnable scale and two captions of one image', async (t) => {
  await assertParity(t, () =>
    lossAndGradients(
      { images: tf.tensor2d(wave(4 * 8, 0.2), [4, 8]), texts: tf.tensor2d(wave(4 * 8, 1.1), [4, 8]), logScale: tf.scalar(Math.log(1 / 0.07)) },
      (images, texts, logScale) => infoNceLoss(images as tf.Tensor2D, texts as tf.Tensor2D, logScale as tf.Scalar, { sameItem: [0, 1, 1, 2] }),
    ),
  );
});

gpuTest('scene-graph loss (objects, attributes, relations) from pooled image tokens through the head', async (t) => {
  const graphs: SceneGraph[] = [
    {
      objects: [
        { box: [0, 0, 0.5, 0.5], classIndex: 1, attributes: [0, 2] },
        { box: [0.5, 0.25, 1, 1], classIndex: 3, attributes: [1] },
        { box: [0.1, 0.6, 0.3, 0.9], classIndex: 0 },
      ],
      relations: [
        { subject: 0, object: 1, predicate: 1 },
        { subject: 2, object: 0, predicate: 0 },
      ],
    },
    { objects: [{ box: [0.2, 0.2, 0.8, 0.8], classIndex: 2, attributes: [] }] },
  ];
  const sizes = { objectClasses: 4, attributes: 3, predicates: 2 };
  await assertParity(t, () => {
    const head = new SceneGraphHead({ ...sizes, inputDim: 8 }, new SeededRandom(5));
    try {
      const tokens = tf.tensor3d(wave(2 * 17 * 8, 0.9, 1.5), [2, 17, 8]);
      const variables = head.trainableVariables();
      return tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => sceneGraphObjective(tokens, { rows: 4, cols: 4, offset: 1 }, graphs, head, sizes).total, variables);
        const tokenGradient = tf.grad((x: tf.Tensor) => sceneGraphObjective(x as tf.Tensor3D, { rows: 4, cols: 4, offset: 1 }, graphs, head, sizes).total)(tokens);
        return hostCopies({ loss: value, '∂tokens': tokenGradient, ...Object.fromEntries(variables.map((v, i) => [`∂head parameter ${i}`, grads[v.name]])) });
      });
    } finally {
      head.dispose();
    }
  });
});

gpuTest('multi-kernel MMD between a source and a target batch', async (t) => {
  await assertParity(t, () =>
    lossAndGradients({ source: tf.tensor2d(wave(4 * 6, 0.5), [4, 6]), target: tf.tensor2d(wave(5 * 6, 2.5, 1.5), [5, 6]) }, (source, target) =>
      multiKernelMmd(source as tf.Tensor2D, target as tf.Tensor2D),
    ),
  );
});

gpuTest('DANN: discriminator loss behind gradient reversal', async (t) => {
  await assertParity(t, () => {
    const discriminator = new DomainDiscriminator({ inputDim: 6, hiddenDim: 8 }, new SeededRandom(9));
    try {
      const source = tf.tensor2d(wave(4 * 6, 0.4), [4, 6]);
      const target = tf.tensor2d(wave(3 * 6, 1.9, 1.2), [3, 6]);
      const variables = discriminator.trainableVariables();
      return tf.tidy(() => {
        const loss = (s: tf.Tensor, g: tf.Tensor) => dannLoss(s as tf.Tensor2D, g as tf.Tensor2D, discriminator, 3, 10, DANN_DEFAULTS).loss;
        const { value, grads } = tf.variableGrads(() => loss(source, target), variables);
        const [dSource, dTarget] = tf.grads(loss)([source, target]);
        return hostCopies({ loss: value, '∂source (reversed)': dSource, '∂target (reversed)': dTarget, ...Object.fromEntries(variables.map((v, i) => [`∂discriminator parameter ${i}`, grads[v.name]])) });
      });
    } finally {
      discriminator.dispose();
    }
  });
});

gpuTest('adversarial training: K perturbation steps on both modalities, accumulated gradients, KL terms and δ norms', async (t) => {
  await assertParity(t, () => {
    const weights = tf.variable(tf.tensor2d(wave(4 * 3, 0.8), [4, 3]), true);
    const text = tf.tensor3d(wave(2 * 3 * 4, 0.2), [2, 3, 4]);
    const image = tf.tensor3d(wave(2 * 5 * 4, 1.4), [2, 5, 4]);
    try {
      const result = adversarialGradients(
        (deltas) => {
          const pooled = text.add(deltas.text).mean(1).add(image.add(deltas.image).mean(1));
          const logits = tf.matMul(pooled, weights) as tf.Tensor2D;
          return { loss: multipleChoiceLoss(logits, [2, 0]), logits };
        },
        { textShape: text.shape, imageShape: image.shape, variables: [weights], settings: { ...ADVERSARIAL_DEFAULTS, modality: 'both', eta: 0.05, epsilon: 0.1 } },
      );
      const outputs = {
        ...hostCopies({ '∂weights (accumulated)': result.grads[weights.name] }),
        loss: Float32Array.of(result.loss),
        'task losses': Float32Array.from(result.taskLosses),
        'KL losses': Float32Array.from(result.klLosses),
        'text δ norms': Float32Array.from(result.perturbationNorms.text),
        'image δ norms': Float32Array.from(result.perturbationNorms.image),
      };
      tf.dispose(Object.values(result.grads));
      return outputs;
    } finally {
      tf.dispose([weights, text, image]);
    }
  });
});
