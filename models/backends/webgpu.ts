/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: tfjs's `@tensorflow/tfjs-backend-webgpu` on Dawn, Google's WebGPU
 * implementation, through the `webgpu` npm package (a prebuilt `dawn.node`). Dawn drives the
 * GPU through the driver's Vulkan on Linux, so one code path serves NVIDIA, AMD and Intel
 * GPUs, and Mesa's lavapipe (a software Vulkan device) where there is no GPU.
 *
 * Two things tfjs's own registration cannot do in Node are done here:
 * - `navigator.gpu` does not exist in Node 20; it comes from the package's `create([])`.
 * - The backend reads tensors synchronously (`dataSync`) through an OffscreenCanvas, which
 *   Node lacks. Training code reads losses and gradient norms with `dataSync`, so this module
 *   reads through a mapped staging buffer instead and waits for Dawn on the spot (see
 *   `waitForDawn`).
 *
 * One adapter per process: tfjs has one backend named 'webgpu', and its kernels are
 * registered under that name.
 */
import * as tf from '@tensorflow/tfjs';

/** tfjs's name of the backend; kernels are registered under it. */
export const WEBGPU_BACKEND = 'webgpu';

/** What to install where no adapter is found (Debian bookworm; its own Mesa 22 is too old). */
export const WEBGPU_INSTALL_HINT =
  'install a GPU driver with Vulkan, or for a software adapter Mesa 25 (apt-get install -t bookworm-backports mesa-vulkan-drivers)';

/** One adapter as Dawn describes it, and how vlbench classifies it. */
export interface WebGpuAdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader): correct, far slower than a GPU. */
  software: boolean;
  /** The adapter-request options that returned it. */
  foundBy: AdapterRequest[];
}

export type AdapterRequest = 'default' | 'high-performance' | 'low-power' | 'fallback';

export interface WebGpuDiscovery {
  /** The distinct adapters that WebGPU's adapter requests return, the default one first. */
  adapters: WebGpuAdapterDescription[];
  /** Every adapter Dawn enumerates, by name (a multi-GPU machine lists each GPU here). */
  enumerated: string[];
  /** Why there is no adapter at all (the package failed to load, no Vulkan driver). */
  problem?: string;
}

/** Which adapter a backend request accepts. */
export type AdapterPolicy =
  /** `auto`: a GPU, never a software adapter. */
  | 'hardware'
  /** `--backend webgpu`: the default adapter, whatever it is (and the caller says if it is software). */
  | 'any'
  /** `--backend webgpu-software`: the software adapter, even where a GPU exists. */
  | 'software';

export interface WebGpuAttempt {
  ok: boolean;
  reason: string;
  adapter?: WebGpuAdapterDescription;
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<{ gpu: GPU } | { problem: string }> | undefined;

/** Loads dawn.node once, installs WebGPU's globals and `navigator.gpu`. */
function loadDawn(): Promise<{ gpu: GPU } | { problem: string }> {
  dawn ??= (async () => {
    try {
      const module = (await import('webgpu')) as unknown as DawnModule;
      installDawnPump();
      // GPUBufferUsage, GPUMapMode, ...: the backend reads them as globals, as in a browser.
      for (const [name, value] of Object.entries(module.globals)) if (!(name in globalThis)) Object.assign(globalThis, { [name]: value });
      const gpu = module.create([]);
      provideNavigatorGpu(gpu);
      return { gpu };
    } catch (error) {
      return { problem: `the webgpu package (dawn.node) failed to load: ${firstLine(error)}` };
    }
  })();
  return dawn;
}

function provideNavigatorGpu(gpu: GPU): void {
  const existing = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!existing) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  else if (!existing.gpu) Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true });
}

// ---------------------------------------------------------------------------------------
// Waiting for Dawn synchronously.
//
// dawn.node delivers every completion (a mapped buffer, a finished queue) from
// `wgpuInstanceProcessEvents`, which it runs from a callback it hands to the global
// `setImmediate` (dawn/src/dawn/node/binding/AsyncRunner.cpp). A synchronous read cannot
// yield to the event loop, so the wrapper below keeps Dawn's pending callback where the read
// can run it itself: it runs once, either there or from the event loop, never twice. Only
// native callbacks without arguments are kept — Dawn's; JavaScript callbacks pass through.

interface PendingNativeImmediate {
  run: () => void;
  ran: boolean;
}

const pendingNativeImmediates = new Set<PendingNativeImmediate>();
let pumpInstalled = false;

function installDawnPump(): void {
  if (pumpInstalled) return;
  pumpInstalled = true;
  const original = globalThis.setImmediate;
  const wrapped = function setImmediate(callback: (...args: unknown[]) => void, ...args: unknown[]) {
    if (typeof callback !== 'function' || args.length > 0 || !Function.prototype.toString.call(callback).includes('[native code]')) {
      return original(callback, ...args);
    }
    const entry: PendingNativeImmediate = { run: () => callback(), ran: false };
    pendingNativeImmediates.add(entry);
    return original(() => runOnce(entry));
  };
  // Keeps util.promisify(setImmediate) and the rest of the function's own properties.
  Object.assign(wrapped, original);
  globalThis.setImmediate = wrapped as typeof globalThis.setImmediate;
}

function runOnce(entry: PendingNativeImmediate): void {
  if (entry.ran) return;
  entry.ran = true;
  pendingNativeImmediates.delete(entry);
  entry.run();
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs Dawn's event processing until `done()` holds. Between rounds the thread sleeps a
 * little: a software adapter computes on this machine's other threads, and spinning would
 * take a core from them.
 */
function waitForDawn(done: () => boolean, what: string, timeoutMs = 600_000): void {
  const started = Date.now();
  let rounds = 0;
  while (!done()) {
    for (const entry of [...pendingNativeImmediates]) runOnce(entry);
    if (done()) return;
    if (++rounds > 4) Atomics.wait(sleeper, 0, 0, rounds > 1000 ? 2 : 0.05);
    if (Date.now() - started > timeoutMs) throw new Error(`WebGPU: ${what} did not complete within ${timeoutMs / 1000} s`);
  }
}

// ---------------------------------------------------------------------------------------
// Adapters.

let discovery: Promise<WebGpuDiscovery> | undefined;

/** The adapters this machine offers to WebGPU (asked once per process). */
export function discoverWebGpuAdapters(): Promise<WebGpuDiscovery> {
  discovery ??= discoverNow();
  return discovery;
}

const REQUESTS: Array<[AdapterRequest, GPURequestAdapterOptions]> = [
  ['default', {}],
  ['high-performance', { powerPreference: 'high-performance' }],
  ['low-power', { powerPreference: 'low-power' }],
  ['fallback', { forceFallbackAdapter: true }],
];

async function discoverNow(): Promise<WebGpuDiscovery> {
  const loaded = await loadDawn();
  if ('problem' in loaded) return { adapters: [], enumerated: [], problem: loaded.problem };
  const adapters: WebGpuAdapterDescription[] = [];
  for (const [request, options] of REQUESTS) {
    let adapter: GPUAdapter | null;
    try {
      adapter = await loaded.gpu.requestAdapter(options);
    } catch (error) {
      return { adapters, enumerated: [], problem: `requestAdapter(${JSON.stringify(options)}) failed: ${firstLine(error)}` };
    }
    if (!adapter) continue;
    const described = describeAdapter(adapter, request);
    const same = adapters.find((a) => sameAdapter(a, described));
    if (same) same.foundBy.push(request);
    else adapters.push(described);
  }
  const enumerated = await enumerateAdapterNames();
  if (!adapters.length) return { adapters, enumerated, problem: `no WebGPU adapter: Dawn found no Vulkan device; ${WEBGPU_INSTALL_HINT}` };
  return { adapters, enumerated };
}

/** What vlbench reads from GPUAdapterInfo, and whether it is a software adapter. */
export function describeAdapter(adapter: Pick<GPUAdapter, 'info'> & { isFallbackAdapter?: boolean }, foundBy: AdapterRequest): WebGpuAdapterDescription {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; adapterType?: string };
  const described = {
    vendor: info.vendor || 'unknown vendor',
    architecture: info.architecture || 'unknown architecture',
    device: info.device || 'unknown device',
    description: info.description || '',
  };
  return { ...described, software: isSoftwareAdapter({ ...described, fallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter), adapterType: info.adapterType }), foundBy: [foundBy] };
}

/**
 * A software adapter computes on the CPU. Dawn marks it as the fallback adapter (its adapter
 * type is CPU); Mesa's lavapipe also names itself "llvmpipe" and reports the architecture
 * "software", and SwiftShader names itself; any one of these is enough.
 */
export function isSoftwareAdapter(info: { vendor: string; architecture: string; device: string; description: string; fallback?: boolean; adapterType?: string }): boolean {
  if (info.fallback || info.adapterType === 'cpu') return true;
  if (info.architecture.toLowerCase() === 'software') return true;
  return /llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${info.device} ${info.description}`);
}

function sameAdapter(a: WebGpuAdapterDescription, b: WebGpuAdapterDescription): boolean {
  return a.vendor === b.vendor && a.architecture === b.architecture && a.device === b.device && a.description === b.description;
}

/**
 * WebGPU has no call that lists adapters; Dawn's Node binding names them all when asked for
 * one that does not exist ("Available adapters: * backend: 'vulkan', name: '…'"). Informational
 * only: if that wording ever changes, the list is just empty.
 */
async function enumerateAdapterNames(): Promise<string[]> {
  const module = (await import('webgpu')) as unknown as DawnModule;
  try {
    await module.create(['adapter=\u0001vlbench-lists-adapters']).requestAdapter();
    return [];
  } catch (error) {
    const names: string[] = [];
    for (const match of String((error as Error)?.message ?? error).matchAll(/\* backend: '([^']+)', name: '([^']+)'/g)) names.push(`${match[2]} (${match[1]})`);
    return names;
  }
}

/** One line for `vlbench env` and for the backend line of every run. */
export function describeWebGpuAdapter(adapter: WebGpuAdapterDescription): string {
  const kind = adapter.software ? 'software adapter: correct, but computes on the CPU' : 'hardware adapter';
  return `${adapter.description || adapter.device} (vendor ${adapter.vendor}, architecture ${adapter.architecture}; ${kind})`;
}

// ---------------------------------------------------------------------------------------
// The backend.

let registered: { adapter: WebGpuAdapterDescription } | undefined;

/**
 * Makes 'webgpu' the current tfjs backend on an adapter the policy accepts, or says why not
 * and leaves the current backend as it was.
 */
export async function tryWebGpu(policy: AdapterPolicy): Promise<WebGpuAttempt> {
  const found = await discoverWebGpuAdapters();
  if (registered) return useRegistered(policy, found);
  if (found.problem) return { ok: false, reason: found.problem };
  const wanted = policy === 'software' ? found.adapters.find((a) => a.software) : found.adapters[0];
  if (!wanted) return { ok: false, reason: `no software adapter among ${found.adapters.map(describeWebGpuAdapter).join('; ')}` };
  if (policy === 'hardware' && wanted.software) {
    return { ok: false, reason: `only a software adapter, ${describeWebGpuAdapter(wanted)}; it is used only when asked for by name (--backend webgpu)`, adapter: wanted };
  }
  const loaded = await loadDawn();
  if ('problem' in loaded) return { ok: false, reason: loaded.problem };
  let adapter: GPUAdapter | null;
  let device: GPUDevice;
  try {
    adapter = await loaded.gpu.requestAdapter(wanted.software && policy === 'software' ? { forceFallbackAdapter: true } : { powerPreference: 'high-performance' });
    if (!adapter) return { ok: false, reason: 'the adapter found a moment ago is gone' };
    device = await adapter.requestDevice(deviceDescriptor(adapter));
  } catch (error) {
    return { ok: false, reason: `requesting a WebGPU device failed: ${firstLine(error)}`, adapter: wanted };
  }
  const backend = await createBackend(device, adapter);
  if ('problem' in backend) return { ok: false, reason: backend.problem, adapter: wanted };
  const described = describeAdapter(adapter, wanted.foundBy[0]);
  // Priority 0: tfjs never picks it by itself (wasm has 2, cpu 1); only setBackend does.
  tf.registerBackend(WEBGPU_BACKEND, () => backend.instance, 0);
  registered = { adapter: described };
  return useRegistered(policy, found);
}

async function useRegistered(policy: AdapterPolicy, found: WebGpuDiscovery): Promise<WebGpuAttempt> {
  const { adapter } = registered!;
  if (policy === 'hardware' && adapter.software) return { ok: false, reason: `only a software adapter, ${describeWebGpuAdapter(adapter)}; it is used only when asked for by name (--backend webgpu)`, adapter };
  if (policy === 'software' && !adapter.software) {
    return { ok: false, reason: `this process already runs WebGPU on ${describeWebGpuAdapter(adapter)}; one process uses one adapter`, adapter };
  }
  if (!(await tf.setBackend(WEBGPU_BACKEND))) return { ok: false, reason: 'the webgpu backend failed to initialise', adapter };
  await tf.ready();
  const others = found.adapters.length > 1 ? `; ${found.adapters.length} adapters seen` : '';
  return { ok: true, reason: `Dawn on ${describeWebGpuAdapter(adapter)}${others}`, adapter };
}

/** The adapter the running webgpu backend computes on; undefined before it runs. */
export function activeWebGpuAdapter(): WebGpuAdapterDescription | undefined {
  return registered?.adapter;
}

/** tfjs's own device request (base.ts of the backend): the adapter's full limits and timestamps. */
function deviceDescriptor(adapter: GPUAdapter): GPUDeviceDescriptor {
  const limits = adapter.limits;
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  return {
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}

/** What the backend keeps per tensor, as far as reading it back needs. */
interface WebGpuTensorData {
  values: tf.backend_util.BackendValues | null;
  dtype: tf.DataType;
  resource?: GPUBuffer;
  complexTensorInfos?: { real: tf.TensorInfo; imag: tf.TensorInfo };
}

interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): WebGpuTensorData };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer; releaseBuffer(buffer: GPUBuffer): void };
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

async function createBackend(device: GPUDevice, adapter: GPUAdapter): Promise<{ instance: tf.KernelBackend } | { problem: string }> {
  try {
    // Kernels register under 'webgpu' on import. The package's own factory needs
    // navigator.gpu at import time; it may or may not have registered: this module's replaces it.
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    if (tf.findBackendFactory(WEBGPU_BACKEND)) tf.removeBackend(WEBGPU_BACKEND);
    // By default the backend runs small ops on the CPU while their inputs are not yet on the
    // GPU: whether a tensor was just loaded (a resumed checkpoint) would then change which
    // kernel computes it and so the last bits of a training run. Always compute on the GPU.
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const instance = new WebGPUBackend(device, adapter.info);
    instance.readSync = (dataId: object) => readSynchronously(instance as unknown as WebGpuBackendInternals, dataId);
    return { instance };
  } catch (error) {
    return { problem: `@tensorflow/tfjs-backend-webgpu failed to start: ${firstLine(error)}` };
  }
}

/**
 * The backend's readSync without an OffscreenCanvas: copy to a mappable staging buffer, map
 * it, and wait for Dawn here. Costs one queue flush per read, like the asynchronous read.
 */
function readSynchronously(backend: WebGpuBackendInternals, dataId: object): tf.backend_util.BackendValues {
  const data = backend.tensorMap.get(dataId);
  if (data.values != null || data.dtype === 'string') return data.values!;
  if (data.dtype === 'complex64') {
    const real = readSynchronously(backend, data.complexTensorInfos!.real.dataId) as Float32Array;
    const imag = readSynchronously(backend, data.complexTensorInfos!.imag.dataId) as Float32Array;
    data.values = tf.backend_util.mergeRealAndImagArrays(real, imag);
    return data.values;
  }
  const buffer = data.resource as GPUBuffer;
  const staging = backend.bufferManager.acquireBuffer(buffer.size, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.commandEncoder!.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  backend.submitQueue();
  // The promise settles in a microtask, after this function returns; the buffer's state
  // changes inside Dawn's event processing, which waitForDawn runs.
  staging.mapAsync(GPUMapMode.READ).catch(() => undefined);
  waitForDawn(() => staging.mapState !== 'pending', 'reading a tensor back');
  if (staging.mapState !== 'mapped') throw new Error('WebGPU: reading a tensor back failed: the staging buffer could not be mapped (device lost?)');
  const bytes = staging.getMappedRange().slice(0);
  staging.unmap();
  backend.bufferManager.releaseBuffer(staging);
  data.values = tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype);
  return data.values;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] || 'no message';
}
