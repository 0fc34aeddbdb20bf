import type * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random.ts';
import type { SceneGraphVocabularySizes } from '../heads/scene-graph-head.ts';
import type { TokenGrid } from '../ops/regions.ts';
import type { SceneGraph } from './scene-graph-data.ts';
import type { SettingFields } from './settings.ts';

/**
 * The contract every auxiliary objective of a method SPEC (`ft+sg+adv+mmd+dann`) fulfils.
 * An objective is one file: it declares its settings with their defaults, the modules it adds
 * (a scene-graph head, a domain discriminator), and the loss terms it contributes to a batch.
 * The training problem sums the terms in SPEC order (as open_clip's training task returns a
 * dict of losses and sums them); it never names an objective. Adding an objective is one
 * file and one line in `OBJECTIVES` (index.ts).
 *
 * An objective that perturbs the inputs of the forward pass rather than adding a term (adv)
 * implements the optional `wrapForwardPass` hook: the problem hands it a forward pass that
 * takes perturbations (`PerturbableForwardPass`) and adds the gradients the hook returns. An
 * objective whose settings depend on the run (where δ goes depends on which encoder blocks
 * train) resolves them in `resolveForRun`, once, before anything is built. Neither the
 * problem nor the run names the objective.
 */

/** The two shapes of training problem objectives attach to. */
export type ProblemKind =
  /** A fusion transformer over image and text tokens with a task head (VQA, GQA, VCR). */
  | 'fusion'
  /** Two towers' embeddings compared by similarity (retrieval). */
  | 'contrastive';

/** What a problem hands an objective when it builds its modules. */
export interface ObjectiveSetup {
  kind: ProblemKind;
  /** Width of the features the objective sees (pooled fusion output, or the embedding). */
  featureDim: number;
  /** Label spaces of the scene graphs, when the problem has them. */
  sceneGraphSizes?: SceneGraphVocabularySizes;
  random: SeededRandom;
}

/** Everything a loss term may read for one batch; each objective takes what it needs. */
export interface ObjectiveBatch {
  /** The batch's features on the source side: pooled fusion rows or image embeddings. */
  features: tf.Tensor2D;
  /** The same rows built from unlabelled target-domain images (objectives with `needsTargetDomain`). */
  targetFeatures?: tf.Tensor2D;
  /** Image tokens after the fusion, laid out as `grid`, for objectives that pool regions. */
  imageTokens?: tf.Tensor3D;
  grid?: TokenGrid;
  /** Scene graph of each row's image (objectives with `needsSceneGraphs`). */
  graphs?: readonly SceneGraph[];
  step: number;
  totalSteps: number;
}

/** The run's shape an objective may resolve its settings against (before anything is built). */
export interface RunShape {
  /** Whether encoder blocks train (encoder.train_blocks > 0 and a base that trains). */
  encoderTrains: boolean;
  /** encoder.train_blocks as set: 'all' also trains the embeddings. */
  trainBlocks: number | 'all';
}

export type PerturbedModality = 'text' | 'image';

/**
 * Where a perturbation of one modality's tokens enters the forward pass: at the start of a
 * training encoder tower (its input embeddings, or the input of its first trainable block),
 * or on the tokens entering the fusion (a frozen tower's, or when asked for).
 */
export interface PerturbationSite {
  modality: PerturbedModality;
  place: 'encoder' | 'fusion';
  /** Shape of δ for this batch: [rows, tokens, width]. */
  shape: number[];
  /** Per-row L2 norm of the clean tokens δ is added to (real tokens only), which a relative step scales by. */
  referenceNorms(): number[];
}

/** The task's forward pass of one batch, open to additive perturbations, as a problem offers it to `wrapForwardPass`. */
export interface PerturbableForwardPass {
  /** The model variables whose gradients the hook returns. */
  variables: readonly tf.Variable[];
  /** The site of `modality` when the objective asks for `place`; a frozen tower's encoder place falls back to the fusion's input. */
  site(modality: PerturbedModality, place: 'encoder' | 'fusion'): PerturbationSite;
  /** Task loss and logits (answer logits, choice scores) with each given δ added at its site; clean where none is given. */
  run(deltas: Partial<Record<PerturbedModality, { site: PerturbationSite; delta: tf.Tensor }>>): { loss: tf.Scalar; logits: tf.Tensor2D };
}

/** What `wrapForwardPass` gives back for one batch. */
export interface WrappedPassResult {
  /** Gradients by tf variable name; the caller owns and disposes them. */
  grads: tf.NamedTensorMap;
  /** The total the gradients belong to. */
  loss: number;
  /** The clean task loss of the batch (the curve's `task`). */
  taskLoss: number;
  /** Named values for the training curve (e.g. adv's KL term and ‖δ‖/‖x‖). */
  parts: Record<string, number>;
}

export interface LossTerm {
  /** Name on the training curve, e.g. "sg". */
  name: string;
  /** What enters the total loss. */
  contribution: tf.Scalar;
  /** What the curve records when it differs from the contribution (e.g. DANN's L_d before its weight). */
  recorded?: tf.Scalar;
  /** More values the curve records under their own names, showing whether the objective acts (MMD², the discriminator's accuracy). */
  diagnostics?: Record<string, tf.Scalar>;
}

/** What an objective says about its run, read off the training curve (each step's named parts). */
export interface ObjectiveReport {
  /** One line for the run log, e.g. "mmd: MMD² 0.12 at the start → 0.03 at the end". */
  summary: string;
  /** Why the objective looks inert (it changed nothing the loss could feel), when it does. */
  inert?: string;
}

/** An objective's trainable part for one training problem. */
export interface ObjectiveModule {
  namedVariables(): Map<string, tf.Variable>;
  /** The loss terms of one batch, computed inside the problem's gradient tape. */
  lossTerms(batch: ObjectiveBatch): LossTerm[];
  dispose(): void;
}

export interface Objective<Name extends string = string, Settings = unknown> {
  /** The SPEC part and the `--set` prefix, e.g. "sg". */
  name: Name;
  /** One line for `--help`. */
  summary: string;
  defaults: Settings;
  fields: SettingFields<Settings>;
  parse(given: Readonly<Record<string, string>>): Settings;
  /** Needs unlabelled target-domain images (mmd, dann). */
  needsTargetDomain?: boolean;
  /** Needs a scene graph per training image (sg). */
  needsSceneGraphs?: boolean;
  /** Settings resolved against the run (e.g. an `auto` that depends on the encoder); throws InputError for a combination that cannot run. */
  resolveForRun?(settings: Settings, run: RunShape): Settings;
  /** Runs the problem's task forward pass itself, perturbed, instead of adding a term (at most one objective of a SPEC). */
  wrapForwardPass?(settings: Settings, pass: PerturbableForwardPass): WrappedPassResult;
  /** Its line for the run log after training, and whether it stayed inert, from the curve's parts; absent or null: nothing to say. */
  report?(settings: Settings, curve: readonly Readonly<Record<string, number>>[]): ObjectiveReport | null;
  /** Why this objective cannot train a problem of this kind, or null when it can. */
  unsupported(kind: ProblemKind): string | null;
  /** Builds the objective's modules; absent for objectives that only wrap the forward pass. */
  create?(settings: Settings, setup: ObjectiveSetup): ObjectiveModule;
}

/** Declares an objective with its name kept as a literal type (so settings stay typed by name). */
export function defineObjective<const Name extends string, Settings>(objective: Objective<Name, Settings>): Objective<Name, Settings> {
  return objective;
}
