import type { Command } from 'commander';
import { parseBackendChoice, selectBackend } from '../../models/backends/select.ts';
import { describeMachine, softwareVersions } from '../../core/environment.ts';

/** `vlbench env`: what `--backend auto` would pick and why, the versions, the hardware seen. */
export function registerEnv(program: Command): void {
  program
    .command('env')
    .description('print the backend that --backend auto picks and why, the versions of node, tfjs, transformers.js, sharp, and the CPU/GPU seen')
    .option('--backend <name>', 'backend to try: auto | tensorflow | wasm | cpu', 'auto')
    .option('--json', 'print one JSON object instead of text')
    .action(async (options: { backend: string; json?: boolean }) => {
      const choice = parseBackendChoice(options.backend);
      const backend = await selectBackend(choice);
      const versions = softwareVersions();
      const machine = describeMachine();
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ backend: backend.name, attempts: backend.attempts, versions, machine }, null, 2)}\n`);
        return;
      }
      const lines = [
        `backend (${choice}): ${backend.name}`,
        ...backend.attempts.map((a) => `  ${a.ok ? 'picked ' : 'skipped'} ${a.backend.padEnd(14)} ${a.reason}`),
        'versions:',
        ...Object.entries(versions).map(([name, version]) => `  ${name.padEnd(14)} ${version}`),
        'machine:',
        `  cpu            ${machine.cpu} × ${machine.cores}`,
        `  memory         ${machine.memoryGiB} GiB`,
        `  gpu            ${machine.gpus.length ? machine.gpus.join('; ') : 'none seen (no nvidia-smi)'}`,
        `  platform       ${machine.platform}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
