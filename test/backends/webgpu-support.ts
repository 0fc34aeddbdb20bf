import type { TestFn, ExecutionContext } from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { discoverWebGpuAdapters, WEBGPU_INSTALL_HINT } from '../../models/backends/webgpu.ts';

/**
 * What the WebGPU parity tests share: whether an adapter exists (they are skipped, with one
 * line saying what to install, where none does), running one computation on a named backend,
 * and comparing its numbers with the wasm backend's under a stated tolerance.
 */

const discovery = await discoverWebGpuAdapters();
export const webGpuAvailable = discovery.adapters.length > 0;
const skipReason = discovery.problem ?? `no WebGPU adapter: ${WEBGPU_INSTALL_HINT}`;

/**
 * `test.serial` where an adapter exists (the tests switch the process's one current backend,
 * so they must not interleave), `test.skip` elsewhere; says once per file why it skips.
 */
export function webGpuTest(test: TestFn, file: string): TestFn['serial'] | TestFn['skip'] {
  if (webGpuAvailable) return test.serial;
  console.log(`${file}: skipping the WebGPU tests: ${skipReason}`);
  return test.skip;
}

export type Backend = 'wasm' | 'webgpu';

/** Makes `backend` current and runs `work` there; tensors `work` creates live on that backend. */
export async function onBackend<T>(backend: Backend, work: () => T | Promise<T>): Promise<T> {
  await selectBackend(backend);
  if (tf.getBackend() !== backend) throw new Error(`asked for ${backend}, tfjs runs ${tf.getBackend()}`);
  return work();
}

/** Deterministic values in [-scale, scale]: the same on every backend, no RNG kernel involved. */
export function wave(count: number, phase = 0, scale = 1): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = scale * Math.sin(0.61 * i + phase) * Math.cos(0.17 * i - 2 * phase);
  return values;
}

/**
 * Agreement of two float32 computations of the same thing: every element within
 * `absolute + relative · max|expected|`. Scaling by the tensor's largest magnitude, not each
 * element's, is what float32 reassociation gives (a sum's error follows its terms, not its
 * result); a wrong kernel misses by the order of the values themselves.
 */
export interface Tolerance {
  absolute: number;
  relative: number;
}

export function assertClose(t: ExecutionContext, actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: Tolerance, what: string): number {
  t.is(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  let largest = 0;
  for (let i = 0; i < expected.length; i++) largest = Math.max(largest, Math.abs(expected[i]));
  const bound = tolerance.absolute + tolerance.relative * largest;
  let worst = 0;
  let worstIndex = 0;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i] - expected[i]);
    // NaN fails: a NaN difference is never ≤ bound.
    if (!(difference <= worst)) {
      worst = Number.isNaN(difference) ? Infinity : difference;
      worstIndex = i;
    }
  }
  t.true(worst <= bound, `${what}: element ${worstIndex} is ${actual[worstIndex]} on webgpu, ${expected[worstIndex]} on wasm (|Δ| ${worst.toExponential(2)} > ${bound.toExponential(2)})`);
  return worst;
}

/** Host copies of named tensors, for comparing across backends. */
export function hostCopies(tensors: Record<string, tf.Tensor>): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(tensors).map(([name, tensor]) => [name, Float32Array.from(tensor.dataSync())]));
}
