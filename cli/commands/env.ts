import { Option, type Command } from 'commander';
import { BACKEND_CHOICES, BackendRefusedError, selectBackend, type BackendAttempt, type BackendChoice } from '../../models/backends/select.ts';
import { describeWebGpuAdapter, discoverWebGpuAdapters } from '../../models/backends/webgpu.ts';
import { blasAddonStatus, coreTypeChoiceHere, describeCoreTypeChoice } from '../../models/backends/wasm-blas.ts';
import { describeMachine, softwareVersions } from '../../core/environment.ts';
import { imageAddon, imageAddonStatus } from '../../models/image-native.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/**
 * `vlbench env`: what `--backend auto` (or the named backend) picks and why each backend
 * before it was skipped, the WebGPU adapters Dawn sees, the versions, the hardware seen.
 * A refusal is printed like a choice, with every reason, and exits 2.
 */
export function registerEnv(program: Command): void {
  program
    .command('env')
    .description(COMMAND_SUMMARIES.env.description)
    .addOption(new Option('--backend <name>', 'backend to try').choices(BACKEND_CHOICES).default('auto'))
    .option('--json', 'print one JSON object instead of text')
    .action(async (options: { backend: BackendChoice; json?: boolean }) => {
      const choice = options.backend;
      let picked: string | null = null;
      let attempts: BackendAttempt[];
      let refusal: string | undefined;
      try {
        const backend = await selectBackend(choice);
        picked = backend.name;
        attempts = backend.attempts;
      } catch (error) {
        if (!(error instanceof BackendRefusedError)) throw error;
        attempts = error.attempts;
        refusal = error.message;
      }
      const webgpu = await discoverWebGpuAdapters();
      const versions = softwareVersions();
      const machine = describeMachine();
      const openblas = openBlasCoreType();
      const image = imageAddonStatus();
      const imageResampling = { native: image.available, ...(image.available ? { simd: imageAddon()?.simd ?? 'unknown' } : {}), reason: image.reason };
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ choice, backend: picked, attempts, refusal, webgpu, versions, machine, openblas, imageResampling }, null, 2)}\n`);
      } else {
        const lines = [
          `backend (${choice}): ${picked ?? 'none (refused)'}`,
          ...attempts.map((a) => `  ${a.ok ? 'picked ' : 'skipped'} ${a.backend.padEnd(14)} ${a.reason}`),
          ...(refusal ? [`  ${refusal}`] : []),
          'webgpu adapters (Dawn):',
          ...(webgpu.adapters.length
            ? webgpu.adapters.map((a) => `  ${a.software ? 'software' : 'hardware'} ${describeWebGpuAdapter(a)}; returned for ${a.foundBy.join(', ')}`)
            : [`  none: ${webgpu.problem}`]),
          ...(webgpu.enumerated.length > webgpu.adapters.length ? [`  Dawn enumerates ${webgpu.enumerated.length}: ${webgpu.enumerated.join('; ')}`] : []),
          'openblas (wasm-blas kernels):',
          `  core type      ${openblas.coreType ?? 'not set: OpenBLAS detects one'} (${openblas.from})`,
          ...(openblas.loaded ? [] : [`  not loaded: ${openblas.notLoaded}`]),
          `image resampling: ${imageResampling.native ? `native (${imageResampling.simd}), on libuv's threadpool` : `JavaScript, on the main thread (the same pixels, slower): ${imageResampling.reason}`}`,
          'versions:',
          ...Object.entries(versions).map(([name, version]) => `  ${name.padEnd(14)} ${version}`),
          'machine:',
          `  cpu            ${machine.cpu} × ${machine.cores}`,
          `  memory         ${machine.memoryGiB} GiB`,
          `  gpu            ${machine.gpus.length ? machine.gpus.join('; ') : 'none seen (no nvidia-smi)'}`,
          `  platform       ${machine.platform}`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (refusal) process.exitCode = 2;
    });
}

/**
 * The OpenBLAS kernel set this process uses (as OpenBLAS reports it once loaded, else the value
 * it would be given), where it came from, and how to opt in to faster kernels the CPU allows.
 */
function openBlasCoreType(): { coreType?: string; source: string; faster?: string; from: string; inherited?: string; loaded: boolean; notLoaded?: string } {
  const choice = coreTypeChoiceHere();
  const status = blasAddonStatus();
  const coreType = status.info?.coreType ?? choice.coreType ?? choice.inherited;
  return {
    ...(coreType ? { coreType } : {}),
    source: choice.source,
    ...(choice.inherited ? { inherited: choice.inherited } : {}),
    ...(choice.faster ? { faster: choice.faster } : {}),
    from: describeCoreTypeChoice(choice),
    loaded: status.available,
    ...(status.available ? {} : { notLoaded: status.reason }),
  };
}
