import { Command, Option } from 'commander';
import { BACKEND_CHOICES } from '../../models/backends/select.ts';
import { DEMO_ENCODER_BLOCKS, DEMO_EPOCHS, DEMO_METHODS_BY_TASK, DEMO_TASKS, DEMO_VQA_IMAGES, runDemo, type DemoTask } from '../../harness/demo.ts';
import { InputError } from '../../core/errors.ts';
import { parsePositiveInteger, parseSeed, parseWholeNumber } from '../flags.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

const positiveInteger = (value: string, flag: string) => parsePositiveInteger(flag, value);

/** `--epochs 5` (every task) or `--epochs vqa=40,vcr=3` (the tasks named; DEMO_EPOCHS for the rest). */
export function parseDemoEpochs(value: string): Partial<Record<DemoTask, number>> {
  return parseEpochsPerTask(value, Object.keys(DEMO_EPOCHS) as DemoTask[]);
}

/** `--epochs N` for every one of `tasks`, or `task=N,...` for those named; what the demo and bench/methods.ts take. */
export function parseEpochsPerTask<T extends string>(value: string, tasks: readonly T[]): Partial<Record<T, number>> {
  const epochs: Partial<Record<T, number>> = {};
  if (/^\d+$/.test(value.trim())) {
    const n = positiveInteger(value.trim(), '--epochs');
    for (const task of tasks) epochs[task] = n;
    return epochs;
  }
  for (const part of value.split(',')) {
    const [task, count] = part.split('=').map((s) => s.trim());
    if (!tasks.includes(task as T) || count === undefined) throw new InputError(`--epochs expects N or task=N,... with tasks ${tasks.join(', ')}; got ${JSON.stringify(part)}`);
    epochs[task as T] = positiveInteger(count, `--epochs ${task}`);
  }
  return epochs;
}

/** `vlbench demo` (`npm run demo`): the whole pipeline on the embedded default, in minutes. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(COMMAND_SUMMARIES.demo.description)
    .option('--out <dir>', 'demo folder (data, runs, leaderboard.db, leaderboard.html)', 'runs/demo')
    .option('--images <n>', 'SynthScenes images per domain (VCR, retrieval)', '200')
    .option('--vqa-images <n>', 'images per domain of the VQA folder (its own: the VQA head needs thousands of questions)', String(DEMO_VQA_IMAGES))
    .option('--epochs <n|task=n,...>', `training epochs: one number for every task, or per task (default ${Object.entries(DEMO_EPOCHS).map(([t, n]) => `${t}=${n}`).join(',')})`)
    .option('--jobs <n>', 'runs at once (default: one per core; the wasm backend uses one core per run)')
    .option('--seed <n>', 'seed of the data and of every run', '0')
    .option('--methods <list>', `comma-separated method SPECs for ${Object.keys(DEMO_METHODS_BY_TASK).join(' and ')} alike (default: ${Object.entries(DEMO_METHODS_BY_TASK).map(([task, methods]) => `${task} ${methods.join(',')}`).join('; ')})`)
    .option('--tasks <list>', `comma-separated tasks, of ${DEMO_TASKS.join(', ')}`, DEMO_TASKS.join(','))
    .option('--model <dir>', 'model folder (default: the bundled SynthScenes CLIP)')
    .option('--encoder-blocks <n>', `encoder.train_blocks of the extra fine-tuned ft run per task (0: no fine-tuned runs)`, String(DEMO_ENCODER_BLOCKS))
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .action(async (flags: { out: string; images: string; vqaImages: string; epochs?: string; jobs?: string; seed: string; methods?: string; tasks: string; model?: string; encoderBlocks: string; backend: string }) => {
      const tasks = flags.tasks.split(',').map((t) => t.trim());
      const unknown = tasks.filter((t) => !DEMO_TASKS.includes(t));
      if (unknown.length) throw new InputError(`--tasks: unknown ${unknown.join(', ')}; the demo runs ${DEMO_TASKS.join(', ')}`);
      const result = await runDemo({
        outDir: flags.out,
        images: positiveInteger(flags.images, '--images'),
        vqaImages: positiveInteger(flags.vqaImages, '--vqa-images'),
        epochs: flags.epochs === undefined ? undefined : parseDemoEpochs(flags.epochs),
        concurrency: flags.jobs === undefined ? undefined : positiveInteger(flags.jobs, '--jobs'),
        seed: parseSeed('--seed', flags.seed),
        methods: flags.methods?.split(',').map((m) => m.trim()).filter(Boolean),
        tasks,
        modelDir: flags.model,
        encoderBlocks: parseWholeNumber('--encoder-blocks', flags.encoderBlocks),
        backend: flags.backend as 'auto',
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`\nMethod comparison (trained on the source domain; primary metric on each domain's test split):\n${result.table}\n\n`);
      if (result.floors) process.stdout.write(`VQA beside its floor (accuracy, and in brackets the training split's per-question-type prior):\n${result.floors}\n\n`);
      process.stdout.write(`Leaderboard (one table per comparability key):\n${result.leaderboard}\n`);
      process.stdout.write(`HTML leaderboard: ${result.htmlFile}\ndemo finished in ${result.seconds.toFixed(0)} s\n`);
    });
}
