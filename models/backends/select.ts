import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../core/errors.ts';
import type { BackendName } from '../../core/types.ts';
import { tryWebGpu, type AdapterPolicy } from './webgpu.ts';
import { WASM_BLAS_BACKEND, describeBlas, tryWasmBlas } from './wasm-blas.ts';


export interface BackendAttempt {
  backend: BackendName;
  ok: boolean;
  reason: string;
  /** The device it computes on, where the backend can name it (e.g. the WebGPU adapter). */
  device?: string;
}

export interface SelectedBackend {
  name: BackendName;
  /** Why this backend, and why not the ones before it. */
  attempts: BackendAttempt[];
  /** The device it computes on, where known: for a run record's execution.device. */
  device?: string;
}

/**
 * One way of getting a backend. Each tries its backend, makes it the current tfjs backend when
 * it works, and otherwise says why and leaves the current one alone. Each must be cheap to
 * repeat: every selection runs its plan again (a cached answer made `auto` return whatever
 * was asked for before it, the plain CPU backend included).
 */
export type BackendAttemptFunction = () => Promise<BackendAttempt>;

/** The ways of getting a backend (ATTEMPTS below): the names the plans are made of. */
export type AttemptName = keyof typeof ATTEMPTS;

/**
 * What `--backend` accepts, on every command, and the attempts each choice makes, in order; the
 * first that works is used. This table is the one list of choices the flags validate against
 * (BACKEND_CHOICES is its keys); what a backend is named in records is core/types.ts's
 * BACKEND_NAMES. `auto` never reaches the plain CPU backend (about 1.3 GFLOP/s) nor a software
 * WebGPU adapter: both only run when asked for by name. `webgpu` runs on the default WebGPU
 * adapter, whatever it is (and says so when it is a software one); `webgpu-software` asks for
 * the software adapter even where a GPU exists.
 */
const PLANS = {
  auto: ['tensorflow-gpu', 'webgpu-hardware', 'tensorflow', 'wasm-blas', 'wasm'],
  tensorflow: ['tensorflow-gpu', 'tensorflow'],
  webgpu: ['webgpu'],
  'webgpu-software': ['webgpu-software'],
  'wasm-blas': ['wasm-blas'],
  wasm: ['wasm'],
  cpu: ['cpu'],
} as const satisfies Record<string, readonly AttemptName[]>;
export type BackendChoice = keyof typeof PLANS;
export const SELECTION_PLANS: Readonly<Record<BackendChoice, readonly AttemptName[]>> = PLANS;
export const BACKEND_CHOICES = Object.keys(PLANS) as [BackendChoice, ...BackendChoice[]];

export interface SelectBackendOptions {
  /** Replaces how some backends are tried (tests: make every backend fail without breaking the machine). */
  attempts?: Partial<Record<AttemptName, BackendAttemptFunction>>;
}

const require = createRequire(import.meta.url);

/** Does this machine have a CUDA driver that tfjs-node-gpu could use? */
export function cudaDriverPresent(): { present: boolean; reason: string } {
  if (existsSync('/proc/driver/nvidia/version')) return { present: true, reason: 'NVIDIA driver loaded (/proc/driver/nvidia/version)' };
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/local/cuda/lib64']) {
    try {
      if (readdirSync(dir).some((f) => f.startsWith('libcuda.so'))) return { present: true, reason: `libcuda found in ${dir}` };
    } catch {
      // folder absent: keep looking
    }
  }
  return { present: false, reason: 'no NVIDIA driver (no /proc/driver/nvidia, no libcuda.so)' };
}

function packageInstalled(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node', name: BackendName): Promise<BackendAttempt> {
  if (!packageInstalled(pkg)) return { backend: name, ok: false, reason: `${pkg} is not installed (optional dependency; its install needs internet)` };
  try {
    // The native binding registers the "tensorflow" backend with the same tfjs-core instance.
    await import(pkg);
    const ok = await tf.setBackend('tensorflow');
    if (!ok) return { backend: name, ok: false, reason: `${pkg} loaded but its backend failed to initialise` };
    return { backend: name, ok: true, reason: `${pkg} loaded` };
  } catch (error) {
    return { backend: name, ok: false, reason: `${pkg} failed to load: ${firstLine(error)}` };
  }
}

async function tryTensorflowGpu(): Promise<BackendAttempt> {
  const cuda = cudaDriverPresent();
  if (!cuda.present) return { backend: 'tensorflow-gpu', ok: false, reason: cuda.reason };
  return tryNative('@tensorflow/tfjs-node-gpu', 'tensorflow-gpu');
}

/** `VLBENCH_NO_WEBGPU=1` keeps `auto` from loading Dawn at all (a driver that crashes on probing). */
function webGpuAttempt(policy: AdapterPolicy): BackendAttemptFunction {
  return async () => {
    if (policy === 'hardware' && process.env.VLBENCH_NO_WEBGPU === '1') return { backend: 'webgpu', ok: false, reason: 'VLBENCH_NO_WEBGPU=1: not probed' };
    const attempt = await tryWebGpu(policy);
    const adapter = attempt.adapter;
    // A run record's execution.device (200 characters at most): the adapter, and whether it is a GPU.
    const device = adapter ? `${(adapter.description || adapter.device).slice(0, 170)} (${adapter.software ? 'software' : 'hardware'} adapter)` : undefined;
    return { backend: 'webgpu', ok: attempt.ok, reason: attempt.reason, device };
  };
}

async function tryWasm(): Promise<BackendAttempt> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    const ok = await tf.setBackend('wasm');
    if (!ok) return { backend: 'wasm', ok: false, reason: 'the wasm backend failed to initialise' };
    await tf.ready();
    return { backend: 'wasm', ok: true, reason: '@tensorflow/tfjs-backend-wasm (about 40 GFLOP/s on one core)' };
  } catch (error) {
    return { backend: 'wasm', ok: false, reason: `@tensorflow/tfjs-backend-wasm failed: ${firstLine(error)}` };
  }
}

/** wasm with OpenBLAS kernels (native/tfjs-blas); the device names the BLAS build, core type and threads. */
async function tryWasmBlasBackend(): Promise<BackendAttempt> {
  const attempt = await tryWasmBlas();
  return { backend: WASM_BLAS_BACKEND, ok: attempt.ok, reason: attempt.reason, device: attempt.ok && attempt.info ? `cpu: ${describeBlas(attempt.info)}`.slice(0, 200) : undefined };
}

async function tryCpu(): Promise<BackendAttempt> {
  const ok = await tf.setBackend('cpu');
  await tf.ready();
  return { backend: 'cpu', ok, reason: 'plain JavaScript CPU backend (about 1.3 GFLOP/s; only when asked for)' };
}

const ATTEMPTS = {
  'tensorflow-gpu': tryTensorflowGpu,
  'webgpu-hardware': webGpuAttempt('hardware'),
  webgpu: webGpuAttempt('any'),
  'webgpu-software': webGpuAttempt('software'),
  tensorflow: () => tryNative('@tensorflow/tfjs-node', 'tensorflow'),
  'wasm-blas': tryWasmBlasBackend,
  wasm: tryWasm,
  cpu: tryCpu,
} satisfies Record<string, BackendAttemptFunction>;
export const ATTEMPT_NAMES = Object.keys(ATTEMPTS) as AttemptName[];

/** Calls are serialised: two concurrent initialisations of one tfjs backend make the second fail. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Picks the tfjs backend and makes it current, every call anew. `auto` tries tfjs-node-gpu
 * (only with a CUDA driver), WebGPU on a hardware adapter, tfjs-node, then wasm, and fails
 * rather than fall back to the plain CPU backend or a software adapter, which only run when
 * asked for by name.
 */
export function selectBackend(choice: BackendChoice = 'auto', options: SelectBackendOptions = {}): Promise<SelectedBackend> {
  const result = queue.then(() => selectBackendNow(choice, options));
  queue = result.catch(() => undefined);
  return result;
}

async function selectBackendNow(choice: BackendChoice, options: SelectBackendOptions): Promise<SelectedBackend> {
  const plan: readonly AttemptName[] | undefined = SELECTION_PLANS[choice];
  if (!plan) throw new InputError(`--backend "${choice}" is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  const attempts: BackendAttempt[] = [];
  for (const step of plan) {
    const attempt = options.attempts?.[step] ?? ATTEMPTS[step];
    let result: BackendAttempt;
    try {
      result = await attempt();
    } catch (error) {
      result = { backend: backendOfAttempt(step), ok: false, reason: `failed: ${firstLine(error)}` };
    }
    attempts.push(result);
    if (result.ok) return { name: result.backend, attempts, device: result.device };
  }
  throw new BackendRefusedError(choice, attempts);
}

/** No backend of the plan works; `attempts` says why each did not. */
export class BackendRefusedError extends InputError {
  constructor(
    readonly choice: BackendChoice,
    readonly attempts: BackendAttempt[],
  ) {
    super(
      `no usable tfjs backend for --backend ${choice}: ${attempts.map((a) => `${a.backend}: ${a.reason}`).join('; ')}` +
        (choice === 'auto' ? ' (the plain CPU backend and software WebGPU adapters are never picked silently; pass --backend cpu or --backend webgpu to use them)' : ''),
    );
  }
}

function backendOfAttempt(step: AttemptName): BackendName {
  return step.startsWith('webgpu') ? 'webgpu' : (step as BackendName);
}

/** The `--backend` choice that asks for a backend by name (tensorflow-gpu: tensorflow), for a command that must compute where another did. */
export function choiceOfBackend(name: BackendName): BackendChoice | undefined {
  return BACKEND_CHOICES.find((choice) => choice !== 'auto' && SELECTION_PLANS[choice].some((step) => backendOfAttempt(step) === name));
}

/** Parses a --backend value with a clear message. */
export function parseBackendChoice(value: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new InputError(`--backend "${value}" is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
}

/** The line every computing command prints once per run. */
export function describeBackend(backend: SelectedBackend): string {
  const line = `backend: ${backend.name} (${backend.attempts[backend.attempts.length - 1].reason})`;
  // Plain wasm where BLAS kernels were tried: say once why not, and what to install.
  const blas = backend.name === 'wasm' ? backend.attempts.find((a) => a.backend === WASM_BLAS_BACKEND && !a.ok) : undefined;
  return blas ? `${line}; BLAS kernels not used: ${blas.reason}` : line;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] || 'no message';
}
