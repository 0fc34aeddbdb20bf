import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../core/errors.ts';
import type { BackendName } from '../../core/types.ts';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendAttempt {
  backend: BackendName;
  ok: boolean;
  reason: string;
}

export interface SelectedBackend {
  name: BackendName;
  /** Why this backend, and why not the ones before it. */
  attempts: BackendAttempt[];
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
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { backend: name, ok: false, reason: `${pkg} failed to load: ${message}` };
  }
}

async function tryWasm(): Promise<BackendAttempt> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    const ok = await tf.setBackend('wasm');
    if (!ok) return { backend: 'wasm', ok: false, reason: 'the wasm backend failed to initialise' };
    await tf.ready();
    return { backend: 'wasm', ok: true, reason: '@tensorflow/tfjs-backend-wasm (about 40 GFLOP/s on one core)' };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { backend: 'wasm', ok: false, reason: `@tensorflow/tfjs-backend-wasm failed: ${message}` };
  }
}

async function tryCpu(): Promise<BackendAttempt> {
  const ok = await tf.setBackend('cpu');
  await tf.ready();
  return { backend: 'cpu', ok, reason: 'plain JavaScript CPU backend (about 1.3 GFLOP/s; only when asked for)' };
}

let selected: SelectedBackend | undefined;
/** Calls are serialised: two concurrent initialisations of one tfjs backend make the second fail. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Picks the tfjs backend. `auto` tries tfjs-node-gpu (only with a CUDA driver), then
 * tfjs-node, then wasm, and fails rather than fall back to the slow plain CPU backend,
 * which only runs when asked for by name.
 */
export function selectBackend(choice: BackendChoice = 'auto'): Promise<SelectedBackend> {
  const result = queue.then(() => selectBackendNow(choice));
  queue = result.catch(() => undefined);
  return result;
}

async function selectBackendNow(choice: BackendChoice): Promise<SelectedBackend> {
  if (selected && (choice === 'auto' || choiceMatches(choice, selected.name))) return selected;
  const attempts: BackendAttempt[] = [];
  const plan: Array<() => Promise<BackendAttempt>> = [];
  if (choice === 'auto' || choice === 'tensorflow') {
    const cuda = cudaDriverPresent();
    if (cuda.present) plan.push(() => tryNative('@tensorflow/tfjs-node-gpu', 'tensorflow-gpu'));
    else attempts.push({ backend: 'tensorflow-gpu', ok: false, reason: cuda.reason });
    plan.push(() => tryNative('@tensorflow/tfjs-node', 'tensorflow'));
  }
  if (choice === 'auto' || choice === 'wasm') plan.push(tryWasm);
  if (choice === 'cpu') plan.push(tryCpu);
  for (const attempt of plan) {
    const result = await attempt();
    attempts.push(result);
    if (result.ok) {
      selected = { name: result.backend, attempts };
      return selected;
    }
  }
  throw new InputError(
    `no usable tfjs backend for --backend ${choice}: ${attempts.map((a) => `${a.backend}: ${a.reason}`).join('; ')}` +
      (choice === 'auto' ? ' (the plain CPU backend is never picked silently; pass --backend cpu to use it)' : ''),
  );
}

function choiceMatches(choice: BackendChoice, name: BackendName): boolean {
  if (choice === 'tensorflow') return name === 'tensorflow' || name === 'tensorflow-gpu';
  return choice === name;
}

/** Parses a --backend value with a clear message. */
export function parseBackendChoice(value: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new InputError(`--backend "${value}" is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
}

/** The line every computing command prints once per run. */
export function describeBackend(backend: SelectedBackend): string {
  return `backend: ${backend.name} (${backend.attempts[backend.attempts.length - 1].reason})`;
}
