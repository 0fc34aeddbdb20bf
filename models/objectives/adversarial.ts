import * as tf from '@tensorflow/tfjs';
import { booleanSetting, choiceSetting, integerSetting, numberSetting, parseSettings, type SettingFields } from './settings.ts';
import { defineObjective, type PerturbableForwardPass, type PerturbationSite, type RunShape, type WrappedPassResult } from './objective.ts';
import { InputError } from '../../core/errors.ts';
import { curveValues, formatValue, meanOf } from './curve-summary.ts';

/**
 * Adversarial perturbation training in the embedding space, VILLA style (Gan et al. 2020,
 * zhegan27/VILLA; FreeLB's accumulation). Perturbations δ are added to the text token
 * embeddings and/or the image token embeddings entering the fusion. Starting from δ = 0,
 * for k = 0 … K−1:
 *
 *   L_k = (task(x + δ_k) + α · (KL(p ‖ p_adv) + KL(p_adv ‖ p))) / K
 *
 * where p = softmax(clean logits) and p_adv = softmax(logits on x + δ_k), both KLs summed
 * over classes and averaged over the batch. The gradients of L_k with respect to the model
 * variables are summed over the K steps and returned; the caller applies ONE optimiser step
 * with them. Between steps δ ascends the loss:
 *
 *   δ ← δ + η · g / max(‖g‖, 1e-8)      (g = ∂L_k/∂δ, norm per example over all of its tokens)
 *   δ ← projection onto {‖δ‖ ≤ ε}       (per example; skipped when ε = 0)
 *
 * Step 0 is the clean loss (δ = 0, KL = 0), so the objective is the clean task loss plus
 * the adversarial ones, averaged. As in VILLA's code, `norm` selects both the gradient
 * normalisation and the ball: "l2" divides by the L2 norm and rescales δ into the L2 ball;
 * "linf" divides by the max-abs of g and clips δ to [−ε, ε]. Text and image each get their
 * own δ and their own per-example norm when the modality is "both".
 *
 * Where δ goes (`at`): with a frozen encoder, on the tokens entering the fusion (`fusion`).
 * With an encoder that trains, VILLA's place: `input` puts δ on the word embeddings (before
 * positions) and the patch embeddings (before the pre-layer-norm), `boundary` on the input of
 * the first trainable block when the prefix is frozen; `auto` picks input when every block
 * trains, boundary otherwise (a frozen tower's δ stays at the fusion's input).
 *
 * η and ε are relative to each example's clean token norm where δ is added (‖x_i‖₂ over its
 * real tokens), on every path (`relative`, default true): an absolute 1e-3 on fusion tokens of
 * norm ~16, or encoder tokens of norm ~50–200, moved nothing (issues 12 and 29: `ft+adv` gave
 * `ft` to the digit at 4× the cost, KL ~1e-13). false makes them absolute everywhere, which
 * reproduces runs recorded before issue 29 on a frozen encoder (with modality text).
 *
 * Defaults: K = 3, α = 1.5, ε = 0 (unbounded) as VILLA's released settings, and VILLA's VCR
 * choice of perturbing both modalities (the domain shift the benchmark studies is visual, and
 * a text-only δ leaves the image tokens, where it lives, untouched). η = 0.01, relative: see
 * ADVERSARIAL_DEFAULTS.
 *
 * `cleanGradient` (default true, as VILLA): the clean distribution p also receives gradient
 * through the KL term; VILLA keeps the clean forward graph alive across its K backward passes,
 * here the clean forward is recomputed inside each step (K−1 extra forwards). false treats p
 * as a constant target and saves those forwards.
 */
export const ADVERSARIAL_MODALITIES = ['text', 'image', 'both'] as const;
export const ADVERSARIAL_NORMS = ['l2', 'linf'] as const;
export const ADVERSARIAL_POINTS = ['auto', 'input', 'boundary', 'fusion'] as const;

export interface AdversarialSettings {
  steps: number;
  eta: number;
  alpha: number;
  epsilon: number;
  norm: (typeof ADVERSARIAL_NORMS)[number];
  modality: (typeof ADVERSARIAL_MODALITIES)[number];
  cleanGradient: boolean;
  at: (typeof ADVERSARIAL_POINTS)[number];
  relative: boolean;
}

export const ADVERSARIAL_DEFAULTS: AdversarialSettings = {
  steps: 3,
  eta: 1e-2,
  alpha: 1.5,
  epsilon: 0,
  norm: 'l2',
  modality: 'both',
  cleanGradient: true,
  at: 'auto',
  relative: true,
};

export const ADVERSARIAL_SETTING_FIELDS: SettingFields<AdversarialSettings> = {
  steps: { schema: integerSetting(1, 100), expects: 'an integer in [1, 100]', doc: 'K, the number of perturbation steps (forward/backward passes) per batch' },
  eta: { schema: numberSetting((n) => n.positive()), expects: 'a number > 0', doc: 'η, the size of one normalised ascent step on δ' },
  alpha: { schema: numberSetting((n) => n.min(0)), expects: 'a number ≥ 0', doc: 'α, weight of the symmetric KL between clean and perturbed predictions' },
  epsilon: { schema: numberSetting((n) => n.min(0)), expects: 'a number ≥ 0', doc: 'ε, radius of the per-example ball δ is projected onto (0 = unbounded)' },
  norm: { schema: choiceSetting(ADVERSARIAL_NORMS), expects: 'l2 or linf', doc: 'norm of the step normalisation and of the ε ball' },
  modality: { schema: choiceSetting(ADVERSARIAL_MODALITIES), expects: 'text, image or both', doc: 'which embeddings are perturbed' },
  cleanGradient: { schema: booleanSetting(), expects: 'true or false', doc: 'back-propagate the KL term into the clean prediction too (VILLA)' },
  at: { schema: choiceSetting(ADVERSARIAL_POINTS), expects: 'auto, input, boundary or fusion', doc: 'where δ is added: encoder input embeddings, first trainable block, or fusion input (auto: by encoder.train_blocks)' },
  relative: { schema: booleanSetting(), expects: 'true or false', doc: 'η and ε relative to each example\'s clean token norm where δ is added (false: absolute)' },
};

export function parseAdversarialSettings(given: Readonly<Record<string, string>>): AdversarialSettings {
  return parseSettings('adv', ADVERSARIAL_SETTING_FIELDS, ADVERSARIAL_DEFAULTS, given);
}

export interface PerturbationDeltas {
  /** Same shape as the text token embeddings; zeros when text is not perturbed. */
  text: tf.Tensor;
  /** Same shape as the image token embeddings; zeros when images are not perturbed. */
  image: tf.Tensor;
}

/**
 * The model's forward pass with perturbations: it computes its embeddings itself (so their
 * gradient reaches e.g. the word-embedding table), adds the deltas, and returns the task loss
 * and the logits the KL compares (answer logits for VQA, choice scores for VCR).
 */
export type PerturbedLossAndLogits = (deltas: PerturbationDeltas) => { loss: tf.Scalar; logits: tf.Tensor2D };

export interface AdversarialOptions {
  textShape: readonly number[];
  imageShape: readonly number[];
  /** The model variables to differentiate; their gradients are accumulated over the K steps. */
  variables: readonly tf.Variable[];
  settings?: AdversarialSettings;
  /** Per-example norms of the clean values δ is added to, per modality: η and ε are then relative to them (absolute where absent). */
  referenceNorms?: { text?: readonly number[]; image?: readonly number[] };
}

export interface AdversarialResult {
  /** Σ_k ∂L_k/∂variable, by variable name; the caller owns and disposes them. */
  grads: tf.NamedTensorMap;
  /** Σ_k L_k, the value the gradients belong to. */
  loss: number;
  /** task(x + δ_k) for each step; entry 0 is the clean task loss. */
  taskLosses: number[];
  /** Symmetric KL at each step (0 at step 0). */
  klLosses: number[];
  /** Per-example norms (in `norm`) of the last δ used, per perturbed modality. */
  perturbationNorms: { text: number[]; image: number[] };
  /** Per-example L2 norms of the last δ used, per perturbed modality (what ‖δ‖/‖x‖ is read from). */
  perturbationL2Norms: { text: number[]; image: number[] };
}

/** Per-example norm over all axes but the first: [B, …] → [B]. */
export function perExampleNorm(x: tf.Tensor, norm: AdversarialSettings['norm']): tf.Tensor1D {
  return tf.tidy(() => {
    const flat = x.reshape([x.shape[0], -1]);
    return (norm === 'l2' ? flat.square().sum(1).sqrt() : flat.abs().max(1)) as tf.Tensor1D;
  });
}

function perExampleShape(x: tf.Tensor): number[] {
  return [x.shape[0], ...x.shape.slice(1).map(() => 1)];
}

/** η · g / max(‖g‖, 1e-8), per example; with `scale` (one per example), η · scale_i. */
export function ascentStep(gradient: tf.Tensor, eta: number, norm: AdversarialSettings['norm'], scale?: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    const step = gradient.mul(eta).div(tf.maximum(perExampleNorm(gradient, norm), 1e-8).reshape(perExampleShape(gradient)));
    return scale ? step.mul(tf.tensor1d([...scale]).reshape(perExampleShape(gradient))) : step;
  });
}

/** Projects each example's δ onto the ε ball of the given norm (radius ε · scale_i with `scale`); ε = 0 means unbounded. */
export function projectPerturbation(delta: tf.Tensor, epsilon: number, norm: AdversarialSettings['norm'], scale?: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    if (epsilon <= 0) return delta.clone();
    const radius = scale ? tf.tensor1d(scale.map((s) => s * epsilon)).reshape(perExampleShape(delta)) : tf.scalar(epsilon);
    if (norm === 'linf') return tf.minimum(tf.maximum(delta, radius.neg()), radius);
    const norms = perExampleNorm(delta, 'l2').reshape(perExampleShape(delta));
    return delta.mul(tf.minimum(1, tf.div(radius, tf.maximum(norms, 1e-12))));
  });
}

/** KL(p‖q) + KL(q‖p) = Σ (p − q)(log p − log q), summed over classes, mean over the batch. */
export function symmetricKl(logitsP: tf.Tensor2D, logitsQ: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logP = tf.logSoftmax(logitsP);
    const logQ = tf.logSoftmax(logitsQ);
    return tf.exp(logP).sub(tf.exp(logQ)).mul(logP.sub(logQ)).sum().div(logitsP.shape[0]) as tf.Scalar;
  });
}

export function adversarialGradients(lossAndLogits: PerturbedLossAndLogits, options: AdversarialOptions): AdversarialResult {
  const settings = options.settings ?? ADVERSARIAL_DEFAULTS;
  const perturbText = settings.modality !== 'image';
  const perturbImage = settings.modality !== 'text';
  const steps = settings.steps;
  const zerosText = tf.zeros(options.textShape as number[]);
  const zerosImage = tf.zeros(options.imageShape as number[]);
  // δ are variables so that variableGrads gives their gradient alongside the model's.
  const deltaText = perturbText ? tf.tidy(() => tf.variable(tf.zeros(options.textShape as number[]), true)) : null;
  const deltaImage = perturbImage ? tf.tidy(() => tf.variable(tf.zeros(options.imageShape as number[]), true)) : null;
  const deltas: PerturbationDeltas = { text: deltaText ?? zerosText, image: deltaImage ?? zerosImage };
  const grads: tf.NamedTensorMap = {};
  const taskLosses: number[] = [];
  const klLosses: number[] = [];
  let loss = 0;
  let constantCleanLogits: tf.Tensor2D | null = null;
  try {
    for (let step = 0; step < steps; step++) {
      const ascend = step < steps - 1;
      const varList = [...options.variables, ...(ascend ? [deltaText, deltaImage].filter((d): d is tf.Variable => d !== null) : [])];
      let taskTensor: tf.Scalar | null = null;
      let klTensor: tf.Scalar | null = null;
      const { value, grads: stepGrads } = tf.variableGrads(() => {
        const { loss: task, logits } = lossAndLogits(deltas);
        let kl: tf.Scalar;
        if (step === 0) {
          // δ = 0: these are the clean logits, and KL(p‖p) = 0 with zero gradient.
          kl = tf.scalar(0);
          if (!settings.cleanGradient && steps > 1) constantCleanLogits = tf.keep(logits.clone());
        } else {
          const clean = settings.cleanGradient ? lossAndLogits({ text: zerosText, image: zerosImage }).logits : constantCleanLogits!;
          kl = symmetricKl(clean, logits);
        }
        taskTensor = tf.keep(task.clone());
        klTensor = tf.keep(kl.clone());
        return task.add(kl.mul(settings.alpha)).div(steps) as tf.Scalar;
      }, varList);
      loss += value.dataSync()[0];
      value.dispose();
      taskLosses.push(readAndDispose(taskTensor!));
      klLosses.push(readAndDispose(klTensor!));
      for (const variable of options.variables) {
        const g = stepGrads[variable.name];
        if (!g) continue;
        const previous = grads[variable.name];
        grads[variable.name] = previous ? tf.tidy(() => previous.add(g)) : g.clone();
        previous?.dispose();
      }
      if (ascend) {
        for (const [delta, scale] of [[deltaText, options.referenceNorms?.text], [deltaImage, options.referenceNorms?.image]] as const) {
          if (!delta) continue;
          const g = stepGrads[delta.name];
          // No gradient reached δ (the model ignores that modality): δ stays where it is.
          if (g) tf.tidy(() => delta.assign(projectPerturbation(delta.add(ascentStep(g, settings.eta, settings.norm, scale)), settings.epsilon, settings.norm, scale)));
        }
      }
      tf.dispose(stepGrads);
    }
    const normsOf = (delta: tf.Variable | null, norm = settings.norm): number[] => {
      if (!delta) return [];
      const norms = perExampleNorm(delta, norm);
      const values = Array.from(norms.dataSync());
      norms.dispose();
      return values;
    };
    return { grads, loss, taskLosses, klLosses, perturbationNorms: { text: normsOf(deltaText), image: normsOf(deltaImage) }, perturbationL2Norms: { text: normsOf(deltaText, 'l2'), image: normsOf(deltaImage, 'l2') } };
  } catch (error) {
    tf.dispose(grads);
    throw error;
  } finally {
    tf.dispose([zerosText, zerosImage]);
    deltaText?.dispose();
    deltaImage?.dispose();
    (constantCleanLogits as tf.Tensor | null)?.dispose();
  }
}

function readAndDispose(x: tf.Scalar): number {
  const value = x.dataSync()[0];
  x.dispose();
  return value;
}

/**
 * `at` against the run: auto is the encoder's input when every block trains, its first
 * trainable block when some do, the fusion's input on a frozen encoder; a place inside a
 * frozen encoder is refused.
 */
export function resolveAdversarialSettings(settings: AdversarialSettings, run: RunShape): AdversarialSettings {
  const { at } = settings;
  if (at === 'auto') return { ...settings, at: !run.encoderTrains ? 'fusion' : run.trainBlocks === 'all' ? 'input' : 'boundary' };
  if (at !== 'fusion' && !run.encoderTrains) throw new InputError(`--set adv.at=${at} perturbs inside the encoder, which is frozen; set encoder.train_blocks > 0 or adv.at=fusion`, { field: 'adv.at' });
  if (at === 'input' && run.trainBlocks !== 'all') {
    throw new InputError(`--set adv.at=input perturbs the word and patch embeddings, which sit below frozen blocks at encoder.train_blocks=${run.trainBlocks}; use adv.at=boundary (the first trainable block's input) or encoder.train_blocks=all`, { field: 'adv.at' });
  }
  return settings;
}

/**
 * One batch of adversarial training through the problem's forward pass: δ of each perturbed
 * modality at its site (`at`: the encoder's trainable start, or the fusion's input), steps
 * relative to the clean tokens' norm at that site (see the file comment).
 */
export function wrapAdversarialPass(settings: AdversarialSettings, pass: PerturbableForwardPass): WrappedPassResult {
  const place = settings.at === 'fusion' ? 'fusion' : 'encoder';
  const sites = { text: pass.site('text', place), image: pass.site('image', place) };
  const perturbs = { text: settings.modality !== 'image', image: settings.modality !== 'text' };
  // Read once: they scale the steps (relative) and are what ‖δ‖/‖x‖ is measured against.
  const references = { text: perturbs.text ? sites.text.referenceNorms() : undefined, image: perturbs.image ? sites.image.referenceNorms() : undefined };
  const result = adversarialGradients(
    (deltas) =>
      pass.run({
        ...(perturbs.text ? { text: { site: sites.text, delta: deltas.text } } : {}),
        ...(perturbs.image ? { image: { site: sites.image, delta: deltas.image } } : {}),
      }),
    { textShape: sites.text.shape, imageShape: sites.image.shape, variables: pass.variables, settings, referenceNorms: settings.relative ? references : undefined },
  );
  const parts: Record<string, number> = { adv_kl: result.klLosses.at(-1) ?? 0 };
  for (const modality of ['text', 'image'] as const) {
    const reference = references[modality];
    if (reference) parts[`adv_delta_${modality}`] = meanRatio(result.perturbationL2Norms[modality], reference);
  }
  return { grads: result.grads, loss: result.loss, taskLoss: result.taskLosses[0], parts };
}

/** mean_i a_i / b_i over rows with b_i > 0 (0 when none). */
function meanRatio(a: readonly number[], b: readonly number[]): number {
  const ratios = a.flatMap((value, i) => (b[i] > 0 ? [value / b[i]] : []));
  return ratios.length ? ratios.reduce((sum, r) => sum + r, 0) / ratios.length : 0;
}

/** Below this symmetric KL on every step, the perturbation changed no prediction the loss could feel. */
export const ADVERSARIAL_INERT_KL = 1e-6;

/** The run log's adv line: ‖δ‖/‖x‖ per perturbed modality and the KL term; inert when the KL stayed below ADVERSARIAL_INERT_KL. */
export function reportAdversarial(settings: AdversarialSettings, curve: readonly Readonly<Record<string, number>>[]) {
  const kl = curveValues(curve, 'adv_kl');
  if (kl.length === 0) return null;
  const ratios = (['text', 'image'] as const).flatMap((modality) => {
    const values = curveValues(curve, `adv_delta_${modality}`);
    return values.length ? [`${modality} ${formatValue(meanOf(values))}`] : [];
  });
  const largest = Math.max(...kl);
  return {
    summary: `adv: ‖δ‖/‖x‖ ${ratios.join(', ') || 'not measured'}; KL term mean ${formatValue(meanOf(kl))}, max ${formatValue(largest)} over ${kl.length} steps`,
    inert:
      largest < ADVERSARIAL_INERT_KL
        ? `its KL term stayed below ${formatValue(ADVERSARIAL_INERT_KL)} (max ${formatValue(largest)}), so the run trained as ft would at ${settings.steps}× the cost; raise adv.eta (now ${settings.eta}${settings.relative ? ', relative' : ', absolute'})${settings.steps < 2 ? ' or adv.steps (1 never perturbs)' : ''}`
        : undefined,
  };
}

/** `adv`: wraps the forward pass (see adversarialGradients); it adds no term of its own. */
export const adversarialObjective = defineObjective({
  name: 'adv',
  summary: 'VILLA-style adversarial perturbation of the embeddings entering the fusion',
  defaults: ADVERSARIAL_DEFAULTS,
  fields: ADVERSARIAL_SETTING_FIELDS,
  parse: parseAdversarialSettings,
  resolveForRun: resolveAdversarialSettings,
  wrapForwardPass: wrapAdversarialPass,
  report: reportAdversarial,
  unsupported: (kind) => (kind === 'contrastive' ? "adv perturbs the tokens entering the fusion, which a contrastive (retrieval) problem does not have" : null),
});
