import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import type { SeededRandom } from '../../core/random.ts';

/**
 * The variables of one head, created from the run's SeededRandom so that the same seed gives
 * the same initial weights on every backend. Each variable has a stable name inside the head
 * ("layer0/attention/query/kernel") for checkpoints; the tfjs variable names are left to tfjs,
 * which keeps them unique when several heads (or several runs in one process) coexist.
 */
export class ParameterStore {
  private readonly variables = new Map<string, tf.Variable>();

  constructor(
    readonly scope: string,
    private readonly rng: SeededRandom,
  ) {}

  /** N(0, std²) entries, BERT/CLIP-style initialisation for projections and embeddings. */
  normal(name: string, shape: number[], std = 0.02): tf.Variable {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = this.rng.normal() * std;
    return this.add(name, tf.tensor(values, shape));
  }

  zeros(name: string, shape: number[]): tf.Variable {
    return this.add(name, tf.zeros(shape));
  }

  ones(name: string, shape: number[]): tf.Variable {
    return this.add(name, tf.ones(shape));
  }

  private add(name: string, initial: tf.Tensor): tf.Variable {
    if (this.variables.has(name)) throw new Error(`${this.scope}: parameter "${name}" created twice`);
    const variable = tf.variable(initial, true);
    initial.dispose();
    this.variables.set(name, variable);
    return variable;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.variables.values()];
  }

  /** Stable names ("<scope>/<name>") → variables, for checkpoints. */
  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.variables].map(([name, variable]) => [`${this.scope}/${name}`, variable]));
  }

  dispose(): void {
    for (const variable of this.variables.values()) variable.dispose();
    this.variables.clear();
  }
}

/** What every head offers the training loop. */
export interface TrainableModule {
  trainableVariables(): tf.Variable[];
  namedVariables(): Map<string, tf.Variable>;
  dispose(): void;
}

/** A head whose parameters all live in one ParameterStore: its TrainableModule methods are the store's. */
export abstract class ParameterModule implements TrainableModule {
  protected readonly params: ParameterStore;

  constructor(scope: string, rng: SeededRandom) {
    this.params = new ParameterStore(scope, rng);
  }

  trainableVariables(): tf.Variable[] {
    return this.params.trainableVariables();
  }

  namedVariables(): Map<string, tf.Variable> {
    return this.params.namedVariables();
  }

  dispose(): void {
    this.params.dispose();
  }
}

export class Linear {
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    params: ParameterStore,
    name: string,
    readonly inputDim: number,
    readonly outputDim: number,
    /** Initial kernel std; BERT's 0.02 by default, 1/√inputDim where a read-out must pass signal from its first step. */
    std = 0.02,
  ) {
    this.kernel = params.normal(`${name}/kernel`, [inputDim, outputDim], std);
    this.bias = params.zeros(`${name}/bias`, [outputDim]);
  }

  /** [..., inputDim] → [..., outputDim]. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const flat = x.reshape([-1, this.inputDim]);
      return matMul(flat, this.kernel).add(this.bias).reshape([...lead, this.outputDim]);
    });
  }
}

export class LayerNorm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  constructor(
    params: ParameterStore,
    name: string,
    dim: number,
    readonly epsilon = 1e-5,
  ) {
    this.gamma = params.ones(`${name}/gamma`, [dim]);
    this.beta = params.zeros(`${name}/beta`, [dim]);
  }

  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x.sub(mean).mul(tf.rsqrt(variance.add(this.epsilon))).mul(this.gamma).add(this.beta);
    });
  }
}

/** CLIP's GELU approximation x·σ(1.702x): tfjs has no GELU op, and CLIP's own blocks use this one. */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => x.mul(tf.sigmoid(x.mul(1.702))));
}
