import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import { SeededRandom } from '../core/random.ts';
import { choiceSetting, integerSetting, numberSetting, type SettingFields } from '../core/settings.ts';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './encoders/safetensors.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';

/**
 * The training loop every method shares: AdamW with warmup and decay, global-norm gradient
 * clipping, checkpoints that resume bit for bit after kill -9, a NaN/Inf guard, early
 * stopping on a validation score, and one seeded random source. tfjs has no AdamW (its
 * Adam folds weight decay into the gradient, which is L2 regularisation, not AdamW), so
 * the optimiser is written here, with state we can checkpoint exactly.
 */

export const trainingSettingsSchema = z.object({
  epochs: z.number().int().positive().default(3),
  batchSize: z.number().int().positive().default(32),
  learningRate: z.number().positive().default(1e-3),
  weightDecay: z.number().nonnegative().default(0.01),
  /** Share of all steps spent warming the learning rate up linearly from 0. */
  warmupFraction: z.number().min(0).max(1).default(0.1),
  schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
  /** Global L2 norm the gradients are clipped to; 0 disables clipping. */
  maxGradNorm: z.number().nonnegative().default(1),
  /** Steps between checkpoints; 0 writes none. */
  checkpointEvery: z.number().int().nonnegative().default(20),
  /** Steps between validations; 0 validates at the end of each epoch. */
  validateEvery: z.number().int().nonnegative().default(0),
  /** Validations without improvement before stopping; 0 never stops early. */
  earlyStopPatience: z.number().int().nonnegative().default(0),
  /** Which weights the run keeps: those of the best validation (model selection) or the last step's. */
  epochRule: z.enum(['best', 'last']).default('best'),
  seed: z.number().int().default(0),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  epsilon: z.number().positive().default(1e-8),
});
export type TrainingSettings = z.infer<typeof trainingSettingsSchema>;

/** The one place training defaults live; `vlbench run --help` shows these. */
export const TRAINING_DEFAULTS: TrainingSettings = trainingSettingsSchema.parse({});

/** The training loop's `--set` keys (`--set lr=3e-4`), each beside the default it overrides. */
export interface TrainingRecipe {
  lr: number;
  batch: number;
  weight_decay: number;
  warmup: number;
  schedule: TrainingSettings['schedule'];
  max_grad_norm: number;
  patience: number;
  epoch_rule: TrainingSettings['epochRule'];
  checkpoint_every: number;
}

export const TRAINING_RECIPE_DEFAULTS: TrainingRecipe = {
  lr: TRAINING_DEFAULTS.learningRate,
  batch: TRAINING_DEFAULTS.batchSize,
  weight_decay: TRAINING_DEFAULTS.weightDecay,
  warmup: TRAINING_DEFAULTS.warmupFraction,
  schedule: TRAINING_DEFAULTS.schedule,
  max_grad_norm: TRAINING_DEFAULTS.maxGradNorm,
  patience: TRAINING_DEFAULTS.earlyStopPatience,
  epoch_rule: TRAINING_DEFAULTS.epochRule,
  checkpoint_every: TRAINING_DEFAULTS.checkpointEvery,
};

export const TRAINING_SETTING_FIELDS: SettingFields<TrainingRecipe> = {
  lr: { schema: numberSetting((n) => n.positive()), expects: 'a number > 0', doc: 'peak learning rate of AdamW (the task may set its own)' },
  batch: { schema: integerSetting(1), expects: 'a whole number ≥ 1', doc: 'examples per training step (the task may set its own)' },
  weight_decay: { schema: numberSetting((n) => n.nonnegative()), expects: 'a number ≥ 0', doc: 'decoupled weight decay of AdamW, on weights only (not embeddings, norms, biases)' },
  warmup: { schema: numberSetting((n) => n.min(0).max(1)), expects: 'a number from 0 to 1', doc: 'share of all steps spent warming the learning rate up from 0' },
  schedule: { schema: choiceSetting(['cosine', 'linear', 'constant'] as const), expects: 'cosine, linear or constant', doc: 'the learning rate after warmup: cosine or linear decay to 0, or constant' },
  max_grad_norm: { schema: numberSetting((n) => n.nonnegative()), expects: 'a number ≥ 0', doc: 'global L2 norm the gradients are clipped to; 0: no clipping' },
  patience: { schema: integerSetting(0), expects: 'a whole number ≥ 0', doc: 'validations without improvement before training stops; 0: never early' },
  epoch_rule: { schema: choiceSetting(['best', 'last'] as const), expects: 'best or last', doc: 'the weights kept: those of the best validation score (on a held-out slice of training unless --validation-split) or the last step\'s' },
  checkpoint_every: { schema: integerSetting(0), expects: 'a whole number ≥ 0', doc: 'steps between checkpoints (--resume continues from the last); 0: none' },
};

/** The loop's settings from `--set` values given (`recipe`), else `fallback` (a task's own defaults), else TRAINING_DEFAULTS. */
export function trainingSettingsOf(recipe: Partial<TrainingRecipe>, fallback: Partial<TrainingSettings>): TrainingSettings {
  return trainingSettingsSchema.parse({
    ...fallback,
    batchSize: recipe.batch ?? fallback.batchSize,
    learningRate: recipe.lr ?? fallback.learningRate,
    weightDecay: recipe.weight_decay ?? fallback.weightDecay,
    warmupFraction: recipe.warmup ?? fallback.warmupFraction,
    schedule: recipe.schedule ?? fallback.schedule,
    maxGradNorm: recipe.max_grad_norm ?? fallback.maxGradNorm,
    earlyStopPatience: recipe.patience ?? fallback.earlyStopPatience,
    epochRule: recipe.epoch_rule ?? fallback.epochRule,
    checkpointEvery: recipe.checkpoint_every ?? fallback.checkpointEvery,
  });
}

export interface StepContext {
  step: number;
  totalSteps: number;
  /** A generator for this step alone, derived from the run seed and the step number, so a resumed run draws the same numbers. */
  random: SeededRandom;
}

export interface StepResult {
  /** The total loss of the batch. */
  loss: number;
  /** Gradients by variable name; variables without a gradient are left alone this step. */
  gradients: Map<string, tf.Tensor>;
  /** Named loss terms for the training curve (task, sg, adv, mmd, dann, ...). */
  parts?: Record<string, number>;
}

export interface TrainingProblem {
  /** Trainable variables by stable name (the name keys checkpoints). */
  variables: Map<string, tf.Variable>;
  /** Number of training examples; batches are drawn as index lists into them. */
  exampleCount: number;
  /** Computes the loss and gradients of one batch; must not update variables itself. */
  computeGradients(batch: number[], context: StepContext): StepResult;
  /** A validation score, higher is better (used for early stopping and to keep the best weights). */
  validate?(): Promise<number>;
  /** Called after each optimiser step, e.g. to clamp a temperature into its range. */
  afterOptimizerStep?(): void;
  /**
   * Per-variable optimiser options by variable name (absent: scale 1, decay by rank, see
   * AdamW). A fine-tuned encoder gives its variables a learning-rate multiplier (VILLA's
   * lr_mul) and says by parameter role which of them decay.
   */
  variableOptions?: ReadonlyMap<string, VariableOptions>;
}

export interface VariableOptions {
  /** Multiplies the schedule's learning rate for this variable (default 1). */
  learningRateScale?: number;
  /** Whether decoupled weight decay applies (default: rank ≥ 2, see AdamW). */
  weightDecay?: boolean;
}

export interface CurvePoint {
  step: number;
  epoch: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  parts: Record<string, number>;
  validation?: number;
}

export interface TrainingResult {
  steps: number;
  totalSteps: number;
  curve: CurvePoint[];
  stoppedEarly: boolean;
  bestValidation: number | null;
  bestStep: number | null;
  resumedFromStep: number | null;
  seconds: number;
  samplesPerSecond: number;
}

export interface TrainingHooks {
  /** Folder for checkpoints (checkpoint.json + the checkpoint-<step>.safetensors it names); none when absent. */
  checkpointDir?: string;
  /** Continue from the checkpoint in checkpointDir when there is one. */
  resume?: boolean;
  onStep?(point: CurvePoint, samplesPerSecond: number): void;
  /** Test hook: throw after this step's checkpoint, as a kill would. */
  interruptAfterStep?: number;
  /**
   * The run log: one line per validation (each epoch by default) and at the last step, with the
   * loss and every named part averaged over the steps since the previous line, so what each
   * objective did (adv's KL and ‖δ‖/‖x‖, MMD², the discriminator's accuracy) is read as it trains.
   */
  log?(line: string): void;
}

/** `step 12/24 (epoch 1): loss 4.09, task 4.08, adv_kl 1.0e-5, …, validation 8.67`: means of the steps since the last line. */
export function curveLogLine(points: readonly CurvePoint[], totalSteps: number): string {
  const last = points[points.length - 1];
  const sums = new Map<string, { sum: number; n: number }>();
  const add = (name: string, value: number) => {
    const entry = sums.get(name) ?? { sum: 0, n: 0 };
    sums.set(name, { sum: entry.sum + value, n: entry.n + 1 });
  };
  for (const point of points) {
    add('loss', point.loss);
    for (const [name, value] of Object.entries(point.parts)) add(name, value);
  }
  const format = (value: number) => (value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential(1) : value.toPrecision(3));
  const values = [...sums].map(([name, { sum, n }]) => `${name} ${format(sum / n)}`);
  return `step ${last.step}/${totalSteps} (epoch ${last.epoch + 1}, mean of ${points.length} step${points.length === 1 ? '' : 's'}): ${values.join(', ')}${last.validation !== undefined ? `, validation ${last.validation.toFixed(2)}` : ''}`;
}

export class TrainingDivergedError extends InputError {}

/** Learning rate at a step: linear warmup, then cosine or linear decay to 0 (or constant). */
export function learningRateAt(step: number, totalSteps: number, settings: Pick<TrainingSettings, 'learningRate' | 'warmupFraction' | 'schedule'>): number {
  const warmupSteps = Math.round(settings.warmupFraction * totalSteps);
  if (step < warmupSteps) return (settings.learningRate * (step + 1)) / warmupSteps;
  if (settings.schedule === 'constant') return settings.learningRate;
  const progress = totalSteps > warmupSteps ? (step - warmupSteps) / (totalSteps - warmupSteps) : 1;
  if (settings.schedule === 'linear') return settings.learningRate * (1 - progress);
  return settings.learningRate * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Scales gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipByGlobalNorm(gradients: Map<string, tf.Tensor>, maxNorm: number): { gradients: Map<string, tf.Tensor>; norm: number } {
  const squares = [...gradients.values()].map((g) => tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]));
  const norm = Math.sqrt(squares.reduce((a, b) => a + b, 0));
  if (maxNorm <= 0 || !Number.isFinite(norm) || norm <= maxNorm) return { gradients, norm };
  const scale = maxNorm / (norm + 1e-6);
  const clipped = new Map<string, tf.Tensor>();
  for (const [name, g] of gradients) {
    clipped.set(name, tf.mul(g, scale));
    g.dispose();
  }
  return { gradients: clipped, norm };
}

/**
 * AdamW (Loshchilov & Hutter) as PyTorch implements it: p ← p·(1 − lr·wd), then the Adam
 * step with bias correction, with lr = the schedule's rate × the variable's learningRateScale.
 * Which variables decay is decided by their role, not their shape: open_clip exempts
 * embeddings, norms, biases and the logit scale, and CLIP's position embeddings are 2-D
 * [positions, hidden], so a rank rule would decay them. A problem states the role through
 * `variableOptions` (the encoder names its parameters by HF role, see clipParameterRole).
 * Variables it does not describe (the heads, written here with vectors for biases and gains)
 * fall back to decaying matrices only, which is the same rule for them.
 */
export class AdamW {
  readonly firstMoments = new Map<string, tf.Variable>();
  readonly secondMoments = new Map<string, tf.Variable>();
  stepCount = 0;

  constructor(private readonly settings: Pick<TrainingSettings, 'beta1' | 'beta2' | 'epsilon' | 'weightDecay'>) {}

  apply(variables: Map<string, tf.Variable>, gradients: Map<string, tf.Tensor>, scheduledRate: number, options?: ReadonlyMap<string, VariableOptions>): void {
    this.stepCount += 1;
    const { beta1, beta2, epsilon, weightDecay } = this.settings;
    const correction1 = 1 - beta1 ** this.stepCount;
    const correction2 = 1 - beta2 ** this.stepCount;
    for (const [name, gradient] of gradients) {
      const variable = variables.get(name);
      if (!variable) throw new Error(`gradient for unknown variable ${name}`);
      const own = options?.get(name);
      const learningRate = scheduledRate * (own?.learningRateScale ?? 1);
      const decays = own?.weightDecay ?? variable.rank >= 2;
      const m = this.moment(this.firstMoments, name, variable);
      const v = this.moment(this.secondMoments, name, variable);
      tf.tidy(() => {
        const newM = tf.add(tf.mul(m, beta1), tf.mul(gradient, 1 - beta1));
        const newV = tf.add(tf.mul(v, beta2), tf.mul(tf.square(gradient), 1 - beta2));
        m.assign(newM);
        v.assign(newV);
        const decay = decays ? 1 - learningRate * weightDecay : 1;
        const update = tf.div(tf.div(newM, correction1), tf.add(tf.sqrt(tf.div(newV, correction2)), epsilon));
        variable.assign(tf.sub(tf.mul(variable, decay), tf.mul(update, learningRate)));
      });
    }
  }

  private moment(store: Map<string, tf.Variable>, name: string, like: tf.Variable): tf.Variable {
    let moment = store.get(name);
    if (!moment) {
      moment = tf.variable(tf.zerosLike(like), false);
      store.set(name, moment);
    }
    return moment;
  }

  dispose(): void {
    for (const v of [...this.firstMoments.values(), ...this.secondMoments.values()]) v.dispose();
    this.firstMoments.clear();
    this.secondMoments.clear();
  }
}

/** Batches of one epoch: a permutation drawn from the run seed and the epoch number alone. */
export function epochBatches(exampleCount: number, batchSize: number, seed: number, epoch: number): number[][] {
  const order = new SeededRandom(seed).fork(`epoch-${epoch}`).shuffled(Array.from({ length: exampleCount }, (_, i) => i));
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += batchSize) batches.push(order.slice(start, start + batchSize));
  return batches;
}

const checkpointStateSchema = z.object({
  version: z.literal(1),
  step: z.number().int().nonnegative(),
  optimizerSteps: z.number().int().nonnegative(),
  curve: z.array(z.any()),
  bestValidation: z.number().nullable(),
  bestStep: z.number().int().nullable(),
  validationsWithoutImprovement: z.number().int().nonnegative(),
  variableNames: z.array(z.string()),
  settings: z.record(z.string(), z.any()),
  tensorsFile: z.string().regex(/^checkpoint-\d+\.safetensors$/).optional(),
});
type CheckpointState = z.infer<typeof checkpointStateSchema>;

/** Runs the loop. Returns when the steps are done or early stopping fires; the variables then hold the best validated weights. */
export async function train(problem: TrainingProblem, settingsInput: Partial<TrainingSettings>, hooks: TrainingHooks = {}): Promise<TrainingResult> {
  const settings = trainingSettingsSchema.parse(settingsInput);
  const stepsPerEpoch = Math.ceil(problem.exampleCount / settings.batchSize);
  const totalSteps = stepsPerEpoch * settings.epochs;
  if (problem.exampleCount === 0) throw new InputError('no training examples');
  const optimizer = new AdamW(settings);
  const best = new Map<string, tf.Tensor>();
  let state: CheckpointState = {
    version: 1,
    step: 0,
    optimizerSteps: 0,
    curve: [],
    bestValidation: null,
    bestStep: null,
    validationsWithoutImprovement: 0,
    variableNames: [...problem.variables.keys()],
    settings,
  };
  let resumedFromStep: number | null = null;
  if (hooks.resume && hooks.checkpointDir) {
    const restored = await loadCheckpoint(hooks.checkpointDir, problem.variables, optimizer, best, settings);
    if (restored) {
      state = restored;
      resumedFromStep = restored.step;
    }
  }
  const started = performance.now();
  let samples = 0;
  let stoppedEarly = false;
  const validateEvery = settings.validateEvery > 0 ? settings.validateEvery : stepsPerEpoch;
  let sinceLogged: CurvePoint[] = [];

  const validateNow = async (step: number): Promise<number | undefined> => {
    if (!problem.validate) return undefined;
    const score = await problem.validate();
    if (state.bestValidation === null || score > state.bestValidation) {
      state.bestValidation = score;
      state.bestStep = step;
      state.validationsWithoutImprovement = 0;
      snapshot(problem.variables, best);
    } else {
      state.validationsWithoutImprovement += 1;
    }
    return score;
  };

  while (state.step < totalSteps) {
    const step = state.step;
    const epoch = Math.floor(step / stepsPerEpoch);
    const batch = epochBatches(problem.exampleCount, settings.batchSize, settings.seed, epoch)[step - epoch * stepsPerEpoch];
    const context: StepContext = { step, totalSteps, random: new SeededRandom(settings.seed).fork(`step-${step}`) };
    const result = problem.computeGradients(batch, context);
    const { gradients, norm } = clipByGlobalNorm(result.gradients, settings.maxGradNorm);
    if (!Number.isFinite(result.loss) || !Number.isFinite(norm)) {
      for (const g of gradients.values()) g.dispose();
      const parts = Object.entries(result.parts ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
      throw new TrainingDivergedError(
        `training diverged at step ${step + 1}/${totalSteps}: loss ${result.loss}, gradient norm ${norm}${parts ? ` (${parts})` : ''}; ` +
          `lower the learning rate (now ${settings.learningRate}) or raise gradient clipping; no run was recorded`,
      );
    }
    const learningRate = learningRateAt(step, totalSteps, settings);
    optimizer.apply(problem.variables, gradients, learningRate, problem.variableOptions);
    problem.afterOptimizerStep?.();
    for (const g of gradients.values()) g.dispose();
    samples += batch.length;
    state.step = step + 1;
    state.optimizerSteps = optimizer.stepCount;
    const point: CurvePoint = { step: step + 1, epoch, loss: result.loss, learningRate, gradNorm: norm, parts: result.parts ?? {} };
    if (state.step % validateEvery === 0 || state.step === totalSteps) {
      const score = await validateNow(state.step);
      if (score !== undefined) point.validation = score;
    }
    state.curve.push(point);
    sinceLogged.push(point);
    if (hooks.log && (point.validation !== undefined || state.step === totalSteps || state.step % validateEvery === 0)) {
      hooks.log(curveLogLine(sinceLogged, totalSteps));
      sinceLogged = [];
    }
    hooks.onStep?.(point, samples / ((performance.now() - started) / 1000));
    if (hooks.checkpointDir && settings.checkpointEvery > 0 && (state.step % settings.checkpointEvery === 0 || state.step === totalSteps)) {
      await saveCheckpoint(hooks.checkpointDir, state, problem.variables, optimizer, best);
    }
    if (hooks.interruptAfterStep === state.step) throw new Error(`interrupted after step ${state.step} (test hook)`);
    if (settings.earlyStopPatience > 0 && state.validationsWithoutImprovement >= settings.earlyStopPatience) {
      stoppedEarly = true;
      break;
    }
  }
  if (best.size > 0 && settings.epochRule === 'best') restore(best, problem.variables);
  for (const t of best.values()) t.dispose();
  optimizer.dispose();
  const seconds = (performance.now() - started) / 1000;
  return {
    steps: state.step,
    totalSteps,
    curve: state.curve,
    stoppedEarly,
    bestValidation: state.bestValidation,
    bestStep: state.bestStep,
    resumedFromStep,
    seconds,
    samplesPerSecond: seconds > 0 ? samples / seconds : 0,
  };
}

function snapshot(variables: Map<string, tf.Variable>, into: Map<string, tf.Tensor>): void {
  for (const [name, variable] of variables) {
    into.get(name)?.dispose();
    into.set(name, tf.clone(variable));
  }
}

function restore(from: Map<string, tf.Tensor>, variables: Map<string, tf.Variable>): void {
  for (const [name, value] of from) variables.get(name)?.assign(value);
}

function tensorEntry(tensor: tf.Tensor): TensorToWrite {
  return { shape: tensor.shape, data: tensor.dataSync() as Float32Array };
}

async function saveCheckpoint(dir: string, state: CheckpointState, variables: Map<string, tf.Variable>, optimizer: AdamW, best: Map<string, tf.Tensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries: [string, TensorToWrite][] = [];
  for (const [name, variable] of variables) {
    entries.push([`param/${name}`, tensorEntry(variable)]);
    const m = optimizer.firstMoments.get(name);
    const v = optimizer.secondMoments.get(name);
    if (m && v) entries.push([`adam_m/${name}`, tensorEntry(m)], [`adam_v/${name}`, tensorEntry(v)]);
    const kept = best.get(name);
    if (kept) entries.push([`best/${name}`, tensorEntry(kept)]);
  }
  // The tensors go to a file named by step, then the JSON that names it replaces the old JSON,
  // then older tensor files go: a kill at any point leaves one complete, consistent pair.
  const tensorsName = `checkpoint-${state.step}.safetensors`;
  await writeSafetensors(join(dir, tensorsName), entries, { metadata: { step: String(state.step) } });
  state.tensorsFile = tensorsName;
  await writeFileAtomically(join(dir, 'checkpoint.json'), JSON.stringify(state));
  for (const file of await readdir(dir)) {
    if (/^checkpoint-\d+\.safetensors$/.test(file) && file !== tensorsName) await rm(join(dir, file), { force: true });
  }
}

async function loadCheckpoint(
  dir: string,
  variables: Map<string, tf.Variable>,
  optimizer: AdamW,
  best: Map<string, tf.Tensor>,
  settings: TrainingSettings,
): Promise<CheckpointState | null> {
  const jsonFile = join(dir, 'checkpoint.json');
  let raw: string;
  try {
    raw = await readFile(jsonFile, 'utf8');
  } catch {
    return null;
  }
  const parsed = checkpointStateSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new InputError(`not a vlbench training checkpoint: ${parsed.error.issues[0].message}`, { file: jsonFile });
  const state = parsed.data;
  const tensorsFile = join(dir, state.tensorsFile ?? '');
  const tensors = await readSafetensors(tensorsFile);
  if (tensors.metadata.step !== String(state.step)) {
    throw new InputError(`checkpoint tensors are from step ${tensors.metadata.step}, the state from step ${state.step}`, { file: tensorsFile });
  }
  // Every setting shapes the result except how often checkpoints are written.
  for (const key of Object.keys(settings) as (keyof TrainingSettings)[]) {
    if (key === 'checkpointEvery') continue;
    if (JSON.stringify(state.settings[key]) !== JSON.stringify(settings[key])) {
      throw new InputError(`the checkpoint was made with ${key} = ${JSON.stringify(state.settings[key])}, this run has ${JSON.stringify(settings[key])}; a resumed run must keep its settings`, { file: jsonFile, field: key });
    }
  }
  const names = [...variables.keys()];
  if (names.join('\n') !== state.variableNames.join('\n')) throw new InputError('the checkpoint holds other variables than this model', { file: jsonFile, field: 'variableNames' });
  for (const [name, variable] of variables) {
    variable.assign(tf.tensor(tensors.float32(`param/${name}`), variable.shape));
    if (tensors.entry(`adam_m/${name}`)) {
      optimizer.firstMoments.set(name, tf.variable(tf.tensor(tensors.float32(`adam_m/${name}`), variable.shape), false));
      optimizer.secondMoments.set(name, tf.variable(tf.tensor(tensors.float32(`adam_v/${name}`), variable.shape), false));
    }
    if (tensors.entry(`best/${name}`)) best.set(name, tf.tensor(tensors.float32(`best/${name}`), variable.shape));
  }
  optimizer.stepCount = state.optimizerSteps;
  return state;
}

/** Removes a checkpoint once its run is recorded. */
export async function removeCheckpoint(dir: string): Promise<void> {
  for (const file of await readdir(dir).catch(() => [] as string[])) {
    if (file === 'checkpoint.json' || /^checkpoint-\d+\.safetensors$/.test(file)) await rm(join(dir, file), { force: true });
  }
}
