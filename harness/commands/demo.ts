import { Command, Option } from 'commander';
import { BACKEND_CHOICES } from '../backend.ts';
import { DEMO_METHODS, runDemo } from '../demo.ts';
import { InputError } from '../errors.ts';
import { RUN_TASKS } from '../run.ts';

function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag} expects a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

/** `vlbench demo` (`npm run demo`): the whole pipeline on the embedded default, in minutes. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('generate SynthScenes, load the bundled CLIP, compare fine-tuning and adaptation methods on VQA and VCR (source → target), zero-shot and fine-tuned retrieval; print the comparison and the leaderboard, write its HTML page')
    .option('--out <dir>', 'demo folder (data, runs, leaderboard.db, leaderboard.html)', 'runs/demo')
    .option('--images <n>', 'SynthScenes images per domain', '200')
    .option('--epochs <n>', 'training epochs per run', '2')
    .option('--seed <n>', 'seed of the data and of every run', '0')
    .option('--methods <list>', 'comma-separated method SPECs for VQA and VCR', DEMO_METHODS.join(','))
    .option('--tasks <list>', 'comma-separated tasks', 'vqa,vcr,retrieval')
    .option('--model <dir>', 'model folder (default: the bundled SynthScenes CLIP)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .action(async (flags: { out: string; images: string; epochs: string; seed: string; methods: string; tasks: string; model?: string; backend: string }) => {
      const tasks = flags.tasks.split(',').map((t) => t.trim());
      const unknown = tasks.filter((t) => !(RUN_TASKS as readonly string[]).includes(t) || t === 'gqa');
      if (unknown.length) throw new InputError(`--tasks: unknown ${unknown.join(', ')}; the demo runs vqa, vcr, retrieval`);
      const result = await runDemo({
        outDir: flags.out,
        images: positiveInteger(flags.images, '--images'),
        epochs: positiveInteger(flags.epochs, '--epochs'),
        seed: Number.isInteger(Number(flags.seed)) ? Number(flags.seed) : positiveInteger(flags.seed, '--seed'),
        methods: flags.methods.split(',').map((m) => m.trim()).filter(Boolean),
        tasks: tasks as ('vqa' | 'vcr' | 'retrieval')[],
        modelDir: flags.model,
        backend: flags.backend as 'auto',
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`\nMethod comparison (trained on the source domain; primary metric on each domain's test split):\n${result.table}\n\n`);
      process.stdout.write(`Leaderboard (one table per comparability key):\n${result.leaderboard}\n`);
      process.stdout.write(`HTML leaderboard: ${result.htmlFile}\ndemo finished in ${result.seconds.toFixed(0)} s\n`);
    });
}
