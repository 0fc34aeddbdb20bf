/**
 * The wasm backend with BLAS kernels: tfjs's wasm backend, its matrix products
 * (`BatchMatMul`, `_FusedMatMul`) computed by the system's OpenBLAS through the small native
 * addon in native/tfjs-blas, on the wasm heap in place (README.md there says why and how).
 *
 * It is registered as its own backend, 'wasm-blas', sharing the wasm backend's instance (one
 * heap, one set of tensors) and every other wasm kernel, so plain wasm and wasm+BLAS coexist
 * in one process: tests compare them and benches print both from the same run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { InputError } from '../../core/errors.ts';
import { packagePath } from '../../core/package-root.ts';

export const WASM_BLAS_BACKEND = 'wasm-blas';

/** The one line that makes the addon buildable on Debian and Ubuntu. */
export const BLAS_INSTALL_HINT = 'apt-get install -y libopenblas-dev';

const ADDON_DIR = packagePath('native', 'tfjs-blas');
const ADDON_FILE = join(ADDON_DIR, 'build', 'Release', 'tfjs_blas.node');
/** Written by scripts/build-native.mjs: why the addon did or did not build. */
export const BUILD_STATUS_FILE = join(ADDON_DIR, 'build', 'status.json');

export interface BlasInfo {
  /** The BLAS library and its build, as OpenBLAS describes itself. */
  library: string;
  /** The kernel set OpenBLAS runs (its OPENBLAS_CORETYPE, as OpenBLAS names it), and who chose it. */
  coreType: string;
  coreTypeSource: CoreTypeChoice['source'];
  /** Faster kernels the CPU flags allow than the ones an inherited or forced value picked. */
  fasterCoreType?: string;
  threads: number;
}

export interface WasmBlasAttempt {
  ok: boolean;
  reason: string;
  info?: BlasInfo;
}

interface BlasAddon {
  gemm(
    heap: Float32Array,
    transposeA: number,
    transposeB: number,
    m: number,
    n: number,
    k: number,
    aOffsets: Int32Array,
    bOffsets: Int32Array,
    cOffset: number,
    biasOffset: number,
    biasSize: number,
    activation: number,
    leakyreluAlpha: number,
    preluOffset: number,
    preluSize: number,
  ): void;
  reduce(heap: Float32Array, xOffset: number, rows: number, cols: number, outOffset: number, overRows: number, scale: number): void;
  rowOp(
    heap: Float32Array,
    kind: number,
    rows: number,
    cols: number,
    eps: number,
    x: number,
    gamma: number,
    beta: number,
    dy: number,
    out: number,
    mean: number,
    rstd: number,
    dx: number,
    dgamma: number,
    dbeta: number,
  ): void;
  configure(threads: number): { threads: number; coreName: string; config: string };
}

// ---------------------------------------------------------------------------------------
// Core type and threads: both must be settled before the addon (and so OpenBLAS) loads.

/**
 * The OpenBLAS kernel set for a CPU with these /proc/cpuinfo flags. OpenBLAS 0.3.21's own
 * detection takes some virtual CPUs for a 2004 "Prescott" (a sixth of the speed), so the
 * choice is made from the instruction sets the CPU reports instead; undefined leaves
 * OpenBLAS's detection alone (a CPU without AVX gains nothing from naming one).
 */
export function coreTypeForCpuFlags(flags: ReadonlySet<string>): string | undefined {
  if (['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  if (flags.has('avx')) return 'Sandybridge';
  return undefined;
}

export interface CoreTypeChoice {
  /** What to set OPENBLAS_CORETYPE to while OpenBLAS loads; undefined: leave it as it is. */
  coreType?: string;
  /**
   * forced: VLBENCH_OPENBLAS_CORETYPE; inherited: the environment's OPENBLAS_CORETYPE, used as
   * it is; cpu flags: chosen from the CPU's instruction sets; OpenBLAS detection: none of these.
   */
  source: 'forced' | 'inherited' | 'cpu flags' | 'OpenBLAS detection';
  /** The OPENBLAS_CORETYPE in the environment, whoever chose. */
  inherited?: string;
  /** Kernels the CPU flags allow that are faster than the inherited or forced ones: the opt-in to name. */
  faster?: string;
  /**
   * Why the inherited or forced set cannot run here: it needs instructions this CPU's flags lack
   * (SkylakeX on a CPU without AVX-512). OpenBLAS would die of SIGILL at its first product, with
   * no message; the kernels are refused instead, naming the variable.
   */
  unsupported?: string;
}

/**
 * How much of the CPU each OpenBLAS x86-64 kernel set uses: 3 AVX-512, 2 AVX2 + FMA, 1 AVX,
 * 0 older. A name not listed is not compared (no opt-in is suggested over it).
 */
const CORE_TYPE_LEVELS: Record<string, number> = {
  skylakex: 3, cooperlake: 3, sapphirerapids: 3,
  haswell: 2, zen: 2,
  sandybridge: 1, bulldozer: 1, piledriver: 1, steamroller: 1, excavator: 1,
  prescott: 0, core2: 0, penryn: 0, dunnington: 0, nehalem: 0, atom: 0, barcelona: 0, bobcat: 0, katmai: 0, coppermine: 0, northwood: 0, banias: 0, opteron: 0,
};

/**
 * Who picks the kernel set: VLBENCH_OPENBLAS_CORETYPE when set (the way to force one), else
 * an OPENBLAS_CORETYPE inherited from the environment, used as it is (whoever set it may know
 * better: a cluster image pinning kernels that compute correctly everywhere, a benchmark pinning
 * one set for comparable numbers), else the CPU flags, else OpenBLAS's own detection. Where
 * the inherited or forced set is slower than what the flags allow, `faster` names the set to
 * opt in to (this image ships OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU, where SkylakeX
 * kernels run 2.3× faster).
 */
export function chooseCoreType(environment: NodeJS.ProcessEnv, flags: ReadonlySet<string>): CoreTypeChoice {
  const forced = environment.VLBENCH_OPENBLAS_CORETYPE || undefined;
  const inherited = environment.OPENBLAS_CORETYPE || undefined;
  const fromFlags = coreTypeForCpuFlags(flags);
  const fasterThan = (used: string) => {
    const level = CORE_TYPE_LEVELS[used.toLowerCase()];
    return fromFlags && level !== undefined && CORE_TYPE_LEVELS[fromFlags.toLowerCase()] > level ? { faster: fromFlags } : {};
  };
  const seen = inherited ? { inherited } : {};
  // Only judged where the flags are known (Linux) and name a set: elsewhere OpenBLAS decides.
  const beyond = (used: string, variable: string) => {
    const level = CORE_TYPE_LEVELS[used.toLowerCase()];
    const allowed = fromFlags ? CORE_TYPE_LEVELS[fromFlags.toLowerCase()] : undefined;
    return level !== undefined && allowed !== undefined && level > allowed ? { unsupported: `${variable}=${used} needs instructions this CPU lacks (its flags allow ${fromFlags} kernels at most); unset it or name ${fromFlags}` } : {};
  };
  if (forced) return { coreType: forced, source: 'forced', ...seen, ...fasterThan(forced), ...beyond(forced, 'VLBENCH_OPENBLAS_CORETYPE') };
  if (inherited) return { source: 'inherited', ...seen, ...fasterThan(inherited), ...beyond(inherited, 'OPENBLAS_CORETYPE') };
  if (fromFlags) return { coreType: fromFlags, source: 'cpu flags' };
  return { source: 'OpenBLAS detection' };
}

/** Where the core type came from, and the opt-in to faster kernels when there are any, in words. */
export function describeCoreTypeChoice(choice: Pick<CoreTypeChoice, 'source' | 'faster'>): string {
  const from = {
    forced: 'forced by VLBENCH_OPENBLAS_CORETYPE',
    inherited: 'inherited from OPENBLAS_CORETYPE',
    'cpu flags': 'chosen from the CPU flags',
    'OpenBLAS detection': "OpenBLAS's own detection",
  }[choice.source];
  return choice.faster ? `${from}; this CPU runs faster ${choice.faster} kernels: opt in with VLBENCH_OPENBLAS_CORETYPE=${choice.faster}` : from;
}

/** The core type decision for this process: its environment and this CPU's flags. */
export function coreTypeChoiceHere(): CoreTypeChoice {
  return chooseCoreType(process.env, cpuFlags());
}

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return new Set(line ? line.slice(line.indexOf(':') + 1).trim().split(/\s+/) : []);
  } catch {
    return new Set(); // not Linux: let OpenBLAS detect
  }
}

/**
 * BLAS threads for this process: VLBENCH_BLAS_THREADS when set (the run pool sets it for its
 * workers), else every core. A pool of J workers gives each floor(cores / J), so J processes
 * together never ask for more threads than there are cores.
 */
export function blasThreadsFor(environment: NodeJS.ProcessEnv = process.env, cores = os.availableParallelism()): number {
  const asked = environment.VLBENCH_BLAS_THREADS;
  if (asked === undefined || asked === '') return Math.max(1, cores);
  const threads = Number(asked);
  if (!Number.isInteger(threads) || threads < 1) throw new InputError(`VLBENCH_BLAS_THREADS must be a positive integer, got "${asked}"`, { field: 'VLBENCH_BLAS_THREADS' });
  return threads;
}

/** What a pool of `jobs` processes should give each worker as VLBENCH_BLAS_THREADS. */
export function blasThreadsPerWorker(jobs: number, cores = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, jobs)));
}

// ---------------------------------------------------------------------------------------
// Loading the addon.

interface LoadedAddon {
  addon: BlasAddon;
  info: BlasInfo;
}

let loaded: { addon?: LoadedAddon; failure?: string } | undefined;

/** Why the addon is not built, from the build script's status file, with the fix. */
function notBuiltReason(): string {
  let why = 'the native addon native/tfjs-blas is not built';
  let fix = BLAS_INSTALL_HINT;
  try {
    const status = JSON.parse(readFileSync(BUILD_STATUS_FILE, 'utf8')) as { ok: boolean; reason?: string; fix?: string | null };
    if (!status.ok && status.reason) why = `the native addon native/tfjs-blas did not build: ${status.reason}`;
    if (status.fix) fix = status.fix;
  } catch {
    // no status file: the build script never ran
  }
  return `${why}; to build it: ${fix} && node scripts/build-native.mjs`;
}

function loadAddon(): { addon?: LoadedAddon; failure?: string } {
  if (loaded) return loaded;
  if (!existsSync(ADDON_FILE)) return (loaded = { failure: notBuiltReason() });
  const choice = coreTypeChoiceHere();
  if (choice.unsupported) return (loaded = { failure: `not loading OpenBLAS: ${choice.unsupported}` });
  let threads: number;
  try {
    threads = blasThreadsFor();
  } catch (error) {
    return (loaded = { failure: (error as Error).message });
  }
  // OpenBLAS sizes its thread pool at load; starting it smaller keeps idle spinning threads
  // from competing with other workers of a pool.
  if (!process.env.OPENBLAS_NUM_THREADS) process.env.OPENBLAS_NUM_THREADS = String(threads);
  // OpenBLAS reads OPENBLAS_CORETYPE once, when its shared library loads with the addon below.
  // It is put back right after, so the processes this one starts inherit what its caller
  // set, not this process's choice (each of them chooses by the same rule).
  const inheritedCoreType = process.env.OPENBLAS_CORETYPE;
  if (choice.coreType) process.env.OPENBLAS_CORETYPE = choice.coreType;
  try {
    const addon = createRequire(import.meta.url)(ADDON_FILE) as BlasAddon;
    const configured = addon.configure(threads);
    const info: BlasInfo = {
      library: configured.config.trim(),
      coreType: configured.coreName,
      coreTypeSource: choice.source,
      ...(choice.faster ? { fasterCoreType: choice.faster } : {}),
      threads: configured.threads,
    };
    return (loaded = { addon: { addon, info } });
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return (loaded = { failure: `the native addon native/tfjs-blas failed to load: ${message}; rebuild it: ${BLAS_INSTALL_HINT} && node scripts/build-native.mjs` });
  } finally {
    if (inheritedCoreType === undefined) delete process.env.OPENBLAS_CORETYPE;
    else process.env.OPENBLAS_CORETYPE = inheritedCoreType;
  }
}

/** Whether the addon is built and loads, and why not, without touching tfjs. */
export function blasAddonStatus(): { available: boolean; reason: string; info?: BlasInfo } {
  const state = loadAddon();
  if (!state.addon) return { available: false, reason: state.failure! };
  return { available: true, reason: 'native/tfjs-blas built and loaded', info: state.addon.info };
}

// ---------------------------------------------------------------------------------------
// The kernels.

/** tfjs's fusable activations, numbered as the addon's `enum Activation`. */
const ACTIVATION_CODES: Record<string, number> = { linear: 0, relu: 1, relu6: 2, prelu: 3, leakyrelu: 4, sigmoid: 5, elu: 6 };

type TensorInfo = tf.TensorInfo;

function elementOffset(backend: BackendWasm, tensor: TensorInfo): number {
  const byteOffset = backend.dataIdMap.get(tensor.dataId)!.memoryOffset;
  // tfjs-wasm allocates with malloc, which aligns to 8 or 16 bytes; float32 data is always 4-aligned.
  return byteOffset / 4;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Heap offsets of each product's A and B for a batch broadcast the numpy way: the output's
 * outer dims, right-aligned against each operand's, a dim of 1 repeating.
 */
function batchOffsets(outerOut: readonly number[], outer: readonly number[], base: number, matrixSize: number): Int32Array {
  const batch = sizeOf(outerOut);
  const offsets = new Int32Array(batch);
  const rank = outerOut.length;
  const padded = [...new Array(rank - outer.length).fill(1), ...outer];
  // Element strides of the operand's outer dims, 0 where it broadcasts.
  const strides = new Array<number>(rank).fill(0);
  let stride = matrixSize;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : stride;
    stride *= padded[d];
  }
  for (let i = 0; i < batch; i++) {
    let rest = i;
    let offset = base;
    for (let d = rank - 1; d >= 0; d--) {
      offset += (rest % outerOut[d]) * strides[d];
      rest = Math.floor(rest / outerOut[d]);
    }
    offsets[i] = offset;
  }
  return offsets;
}

interface MatMulArgs {
  a: TensorInfo;
  b: TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  bias?: TensorInfo | null;
  activation?: string;
  preluWeights?: TensorInfo | null;
  leakyreluAlpha?: number;
}

function blasMatMul(addon: BlasAddon, backend: BackendWasm, args: MatMulArgs): TensorInfo {
  const { a, b, transposeA, transposeB } = args;
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  const innerA = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const innerB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  if (innerA !== innerB) {
    throw new Error(`Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outerOut = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const out = backend.makeOutput([...outerOut, m, n], 'float32');
  if (sizeOf(out.shape) === 0) return out;
  const k = innerA;
  const aOffsets = batchOffsets(outerOut, outerA, elementOffset(backend, a), m * k);
  const bOffsets = batchOffsets(outerOut, outerB, elementOffset(backend, b), k * n);
  const activation = ACTIVATION_CODES[args.activation ?? 'linear'];
  // Read after makeOutput: an allocation may have grown (and so replaced) the heap's buffer.
  const heap = (backend.wasm as unknown as { HEAPF32: Float32Array }).HEAPF32;
  addon.gemm(
    heap,
    transposeA ? 1 : 0,
    transposeB ? 1 : 0,
    m,
    n,
    k,
    aOffsets,
    bOffsets,
    elementOffset(backend, out),
    args.bias ? elementOffset(backend, args.bias) : -1,
    args.bias ? sizeOf(args.bias.shape) : 0,
    activation,
    args.leakyreluAlpha ?? 0,
    args.preluWeights ? elementOffset(backend, args.preluWeights) : -1,
    args.preluWeights ? sizeOf(args.preluWeights.shape) : 0,
  );
  return out;
}

/** A bias the addon adds as one value per output column (or one for all); others go to the wasm kernel. */
function isRowBias(bias: TensorInfo, n: number): boolean {
  const size = sizeOf(bias.shape);
  return (size === n && bias.shape[bias.shape.length - 1] === n) || size === 1;
}

/**
 * Sum or Mean over leading axes (bias and norm-weight gradients: [64,65,192] → [192]) or
 * over trailing ones (layer-norm moments) as one BLAS matrix-vector product with ones. wasm
 * transposes the reduced axes innermost first, and reduces on one core. Other axis sets and
 * non-float data go to the wasm kernel.
 */
function blasReduction(addon: BlasAddon, plain: tf.KernelConfig, mean: boolean): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    const leading = axes.every((a, i) => a === i);
    const trailing = axes.every((a, i) => a === rank - axes.length + i);
    if (x.dtype !== 'float32' || axes.length === 0 || !(leading || trailing)) return plain.kernelFunc(args);
    const backend = args.backend as BackendWasm;
    const [outShape, reduceShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const reduced = sizeOf(reduceShape);
    const kept = sizeOf(outShape);
    const out = backend.makeOutput(keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape, 'float32');
    if (kept === 0) return out;
    const heap = (backend.wasm as unknown as { HEAPF32: Float32Array }).HEAPF32;
    const rows = leading ? reduced : kept;
    const cols = leading ? kept : reduced;
    addon.reduce(heap, elementOffset(backend, x), rows, cols, elementOffset(backend, out), leading ? 1 : 0, mean ? 1 / reduced : 1);
    return out;
  };
}

const LAYER_NORM = 'VlbenchLayerNorm';
const LAYER_NORM_GRAD = 'VlbenchLayerNormGrad';
const QUICK_GELU = 'VlbenchQuickGelu';
const QUICK_GELU_GRAD = 'VlbenchQuickGeluGrad';
/** The addon's rowOp kinds. */
const ROW_OP = { layerNorm: 0, layerNormGrad: 1, quickGelu: 2, quickGeluGrad: 3 } as const;

/** Layer norm and quick GELU, forward and backward, one threaded pass each (tfjs composes them from 3–20 single-threaded wasm kernels). */
function registerRowKernels(addon: BlasAddon): void {
  const heapOf = (backend: BackendWasm) => (backend.wasm as unknown as { HEAPF32: Float32Array }).HEAPF32;
  const offset = (backend: BackendWasm, t: TensorInfo | undefined) => (t ? elementOffset(backend, t) : -1);
  const rowsAndCols = (x: TensorInfo) => {
    const cols = x.shape[x.shape.length - 1];
    return [sizeOf(x.shape) / cols, cols];
  };
  const register = (kernelName: string, kernelFunc: (backend: BackendWasm, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>) => TensorInfo | TensorInfo[]) =>
    tf.registerKernel({ kernelName, backendName: WASM_BLAS_BACKEND, kernelFunc: (args) => kernelFunc(args.backend as BackendWasm, args.inputs as Record<string, TensorInfo>, args.attrs as Record<string, unknown>) });
  register(LAYER_NORM, (backend, { x, gamma, beta }, { eps }) => {
    const [rows, cols] = rowsAndCols(x);
    const y = backend.makeOutput(x.shape, 'float32');
    const mean = backend.makeOutput([rows], 'float32');
    const rstd = backend.makeOutput([rows], 'float32');
    const o = (t?: TensorInfo) => offset(backend, t);
    addon.rowOp(heapOf(backend), ROW_OP.layerNorm, rows, cols, eps as number, o(x), o(gamma), o(beta), -1, o(y), o(mean), o(rstd), -1, -1, -1);
    return [y, mean, rstd];
  });
  register(LAYER_NORM_GRAD, (backend, { dy, x, gamma, mean, rstd }) => {
    const [rows, cols] = rowsAndCols(x);
    const dx = backend.makeOutput(x.shape, 'float32');
    const dgamma = backend.makeOutput([cols], 'float32');
    const dbeta = backend.makeOutput([cols], 'float32');
    const o = (t?: TensorInfo) => offset(backend, t);
    addon.rowOp(heapOf(backend), ROW_OP.layerNormGrad, rows, cols, 0, o(x), o(gamma), -1, o(dy), -1, o(mean), o(rstd), o(dx), o(dgamma), o(dbeta));
    return [dx, dgamma, dbeta];
  });
  register(QUICK_GELU, (backend, { x }) => {
    const [rows, cols] = rowsAndCols(x);
    const y = backend.makeOutput(x.shape, 'float32');
    if (rows * cols === 0) return y;
    addon.rowOp(heapOf(backend), ROW_OP.quickGelu, rows, cols, 0, offset(backend, x), -1, -1, -1, offset(backend, y), -1, -1, -1, -1, -1);
    return y;
  });
  register(QUICK_GELU_GRAD, (backend, { dy, x }) => {
    const [rows, cols] = rowsAndCols(x);
    const dx = backend.makeOutput(x.shape, 'float32');
    if (rows * cols === 0) return dx;
    addon.rowOp(heapOf(backend), ROW_OP.quickGeluGrad, rows, cols, 0, offset(backend, x), -1, -1, offset(backend, dy), -1, -1, -1, offset(backend, dx), -1, -1);
    return dx;
  });
}

const layerNorms = new Map<number, (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor>();

/**
 * Layer norm over the last axis, (x − mean)/√(var + eps)·gamma + beta, as one kernel forward
 * and one backward. Only on the wasm-blas backend (see fusedRowKernelsActive).
 */
export function fusedLayerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T {
  let op = layerNorms.get(eps);
  if (!op) {
    op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [input, weight, bias, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x: input, gamma: weight, beta: bias }, { eps }) as tf.Tensor[];
      save([input, weight, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [savedX, savedGamma, savedMean, savedRstd] = saved;
          return tf.engine().runKernel(LAYER_NORM_GRAD, { dy: dy as tf.Tensor, x: savedX, gamma: savedGamma, mean: savedMean, rstd: savedRstd }) as tf.Tensor[];
        },
      };
    }) as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
    layerNorms.set(eps, op);
  }
  return op(x, gamma, beta) as T;
}

let quickGeluOp: ((x: tf.Tensor) => tf.Tensor) | undefined;

/** OpenAI CLIP's quick GELU, x·σ(1.702x), as one kernel forward and one backward. Only on wasm-blas (see fusedRowKernelsActive). */
export function fusedQuickGelu<T extends tf.Tensor>(x: T): T {
  quickGeluOp ??= tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([input]);
    return {
      value: tf.engine().runKernel(QUICK_GELU, { x: input }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [tf.engine().runKernel(QUICK_GELU_GRAD, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor],
    };
  }) as (x: tf.Tensor) => tf.Tensor;
  return quickGeluOp(x) as T;
}

/** Whether fusedLayerNorm and fusedQuickGelu run here: on the wasm-blas backend only. */
export function fusedRowKernelsActive(): boolean {
  return tf.getBackend() === WASM_BLAS_BACKEND;
}

function shareData(backend: BackendWasm, x: TensorInfo): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function registerBlasKernels(addon: BlasAddon): void {
  const plainBatchMatMul = tf.getKernel(tf.BatchMatMul, 'wasm')!;
  const plainFusedMatMul = tf.getKernel(tf._FusedMatMul, 'wasm')!;
  tf.copyRegisteredKernels('wasm', WASM_BLAS_BACKEND);
  tf.unregisterKernel(tf.BatchMatMul, WASM_BLAS_BACKEND);
  tf.unregisterKernel(tf._FusedMatMul, WASM_BLAS_BACKEND);
  // The engine clones (Identity) every tensor it saves for the backward pass, and casts each
  // gradient of a clone back to float32; wasm copies the data both times (804 copies in one
  // training step of the bundled CLIP). Tensors are immutable and variables get new data on
  // assign, so sharing the data, as tfjs's CPU backend does, is safe.
  tf.unregisterKernel(tf.Identity, WASM_BLAS_BACKEND);
  tf.registerKernel({ kernelName: tf.Identity, backendName: WASM_BLAS_BACKEND, kernelFunc: (args) => shareData(args.backend as BackendWasm, args.inputs.x as TensorInfo) });
  const plainCast = tf.getKernel(tf.Cast, 'wasm')!;
  tf.unregisterKernel(tf.Cast, WASM_BLAS_BACKEND);
  tf.registerKernel({
    kernelName: tf.Cast,
    backendName: WASM_BLAS_BACKEND,
    kernelFunc: (args) => {
      const x = args.inputs.x as TensorInfo;
      if (x.dtype === (args.attrs as unknown as { dtype: string }).dtype && x.dtype !== 'string') return shareData(args.backend as BackendWasm, x);
      return plainCast.kernelFunc(args);
    },
  });
  registerRowKernels(addon);
  for (const [kernelName, mean] of [[tf.Sum, false], [tf.Mean, true]] as const) {
    const plain = tf.getKernel(kernelName, 'wasm')!;
    tf.unregisterKernel(kernelName, WASM_BLAS_BACKEND);
    tf.registerKernel({ kernelName, backendName: WASM_BLAS_BACKEND, kernelFunc: blasReduction(addon, plain, mean) });
  }
  tf.registerKernel({
    kernelName: tf.BatchMatMul,
    backendName: WASM_BLAS_BACKEND,
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      // Non-float products: the wasm kernel says what it says about them.
      if (a.dtype !== 'float32' || b.dtype !== 'float32') return plainBatchMatMul.kernelFunc(args);
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      return blasMatMul(addon, args.backend as BackendWasm, { a, b, transposeA, transposeB });
    },
  });
  tf.registerKernel({
    kernelName: tf._FusedMatMul,
    backendName: WASM_BLAS_BACKEND,
    kernelFunc: (args) => {
      const { a, b, bias, preluActivationWeights } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
      const attrs = args.attrs as unknown as { transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number };
      const n = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
      const supported =
        a.dtype === 'float32' &&
        b.dtype === 'float32' &&
        attrs.activation in ACTIVATION_CODES &&
        (bias == null || isRowBias(bias, n)) &&
        (attrs.activation !== 'prelu' || preluActivationWeights != null);
      if (!supported) return plainFusedMatMul.kernelFunc(args);
      return blasMatMul(addon, args.backend as BackendWasm, {
        a,
        b,
        transposeA: attrs.transposeA,
        transposeB: attrs.transposeB,
        bias,
        activation: attrs.activation,
        preluWeights: preluActivationWeights,
        leakyreluAlpha: attrs.leakyreluAlpha,
      });
    },
  });
}

// ---------------------------------------------------------------------------------------
// Registration, self-test, selection.

let registration: Promise<WasmBlasAttempt> | undefined;

/**
 * Registers the 'wasm-blas' backend (once) without making it current, after a self-test of
 * its kernels against the plain wasm ones. The current backend is left as it was, except
 * that the wasm backend is initialised.
 */
export function registerWasmBlas(): Promise<WasmBlasAttempt> {
  registration ??= registerNow();
  return registration;
}

async function registerNow(): Promise<WasmBlasAttempt> {
  const state = loadAddon();
  if (!state.addon) return { ok: false, reason: state.failure! };
  const { addon, info } = state.addon;
  await import('@tensorflow/tfjs-backend-wasm');
  const previous = tf.engine().backendName as string | null;
  if (!(await tf.setBackend('wasm'))) return { ok: false, reason: 'the wasm backend failed to initialise' };
  const wasm = tf.backend() as BackendWasm;
  registerBlasKernels(addon);
  // The same instance under a second name: tensors stay where they are when switching.
  tf.registerBackend(WASM_BLAS_BACKEND, () => wasm, 1);
  const mismatch = selfTest();
  if (previous && previous !== tf.getBackend()) await tf.setBackend(previous);
  if (mismatch) {
    // Not tf.removeBackend: it would dispose the instance plain wasm shares. The name stays
    // registered, and tryWasmBlas refuses it with this answer.
    return {
      ok: false,
      reason: `refused the BLAS kernels: ${mismatch} (OpenBLAS core type ${info.coreType}; another core type may compute correctly, e.g. VLBENCH_OPENBLAS_CORETYPE=Haswell)`,
      info,
    };
  }
  return { ok: true, reason: describeBlas(info), info };
}

export function describeBlas(info: BlasInfo): string {
  const from = describeCoreTypeChoice({ source: info.coreTypeSource, faster: info.fasterCoreType });
  return `OpenBLAS kernels on the wasm heap (${info.library}, core type ${info.coreType} ${from}, ${info.threads} thread${info.threads === 1 ? '' : 's'})`;
}

/**
 * Products of the shapes and options the models use, once through the plain wasm kernels
 * and once through the BLAS ones. Returns what differs, or undefined when all agree.
 *
 * The fused product is checked against an unfused product + bias + relu on plain wasm, not
 * against wasm's own _FusedMatMul: in tfjs-backend-wasm 4.22 that kernel adds the bias to
 * the wrong elements whenever transposeA or transposeB is set (test/backends shows it).
 */
function selfTest(): string | undefined {
  const random = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, 'float32', seed);
  const fusedInputs = () => ({ a: random([64, 192], 7), b: random([768, 192], 8), bias: random([768], 9) });
  const cases: Array<{ name: string; plain: () => tf.Tensor; blas?: () => tf.Tensor }> = [
    { name: '[67,129]·[129,33]', plain: () => tf.matMul(random([67, 129], 1), random([129, 33], 2)) },
    { name: '[3,37,48]·[3,37,48]ᵀ', plain: () => tf.matMul(random([3, 37, 48], 3), random([3, 37, 48], 4), false, true) },
    { name: '[200,96]ᵀ·[200,160]', plain: () => tf.matMul(random([200, 96], 5), random([200, 160], 6), true, false) },
    {
      name: 'fused [64,192]·[768,192]ᵀ + bias, relu',
      plain: () => {
        const { a, b, bias } = fusedInputs();
        return tf.relu(tf.matMul(a, b, false, true).add(bias));
      },
      blas: () => tf.fused.matMul({ ...fusedInputs(), transposeB: true, activation: 'relu' }),
    },
  ];
  const compute = (backendName: string, pick: (c: (typeof cases)[number]) => () => tf.Tensor) => {
    tf.engine().setBackend(backendName); // both names are initialised: this is synchronous
    return cases.map((c) => {
      const result = tf.tidy(pick(c));
      const values = result.dataSync() as Float32Array;
      result.dispose();
      return values;
    });
  };
  const current = tf.getBackend();
  try {
    const expected = compute('wasm', (c) => c.plain);
    const got = compute(WASM_BLAS_BACKEND, (c) => c.blas ?? c.plain);
    for (let c = 0; c < cases.length; c++) {
      for (let i = 0; i < expected[c].length; i++) {
        const tolerance = 1e-4 * Math.max(1, Math.abs(expected[c][i]));
        if (!(Math.abs(expected[c][i] - got[c][i]) <= tolerance)) {
          return `${cases[c].name}: element ${i} is ${got[c][i]}, the plain wasm kernels give ${expected[c][i]}`;
        }
      }
    }
    return undefined;
  } catch (error) {
    return `the self-test failed: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    tf.engine().setBackend(current);
  }
}

/**
 * Makes 'wasm-blas' the current tfjs backend: the addon must be built, load, and pass its
 * self-test; otherwise says why (and what to install) and leaves the backend unchanged.
 */
export async function tryWasmBlas(): Promise<WasmBlasAttempt> {
  const registered = await registerWasmBlas();
  if (!registered.ok) return registered;
  if (!(await tf.setBackend(WASM_BLAS_BACKEND))) return { ok: false, reason: 'the wasm-blas backend failed to initialise', info: registered.info };
  await tf.ready();
  return registered;
}

/** The BLAS description of the running wasm-blas backend, for run records; undefined otherwise. */
export function activeBlasInfo(): BlasInfo | undefined {
  return tf.getBackend() === WASM_BLAS_BACKEND ? loaded?.addon?.info : undefined;
}

/**
 * Whether the current backend multiplies by a transposed operand as fast as by a plain one.
 * The wasm backend does not (8-35× slower, see models/ops/matmul.ts), so code written for it
 * copies transposes out first; with BLAS, and on TensorFlow, the transpose flag is free and
 * the copy is pure cost.
 */
export function transposedProductsAreFree(): boolean {
  const name = tf.getBackend();
  return name === WASM_BLAS_BACKEND || name === 'tensorflow';
}
