import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { parsePositiveInteger, parseSeed, parseSetOptions, parseShard, scoringOptionsFromFlags } from '../flags.ts';
import { getTask } from '../../tasks/registry.ts';
import { leaderboardDbOption } from '../db-option.ts';
import { isPostgresLocation } from '../../leaderboard/store.ts';
import { BACKEND_CHOICES } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { executeRun, RUN_TASKS, runRequestSchema, type RunOutcome, type RunRequest } from '../../harness/run.ts';
import { describeSettings } from '../../harness/run-settings.ts';
import { TRAINING_DEFAULTS } from '../../models/train.ts';
import { HELD_OUT_FRACTION } from '../../harness/run-data.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';
import { applyRunFile } from '../run-file.ts';

interface RunFlags {
  task?: string;
  data?: string;
  model?: string;
  method?: string;
  seed: string;
  epochs?: string;
  out: string;
  split?: string;
  trainSplit?: string;
  validationSplit?: string;
  selectOnEvaluation?: boolean;
  imagesDir?: string;
  revision?: string;
  target?: string;
  targetQuestions?: string;
  set: string[];
  backend: string;
  db: string;
  record: boolean;
  name?: string;
  resume?: string;
  maxTrain?: string;
  limit?: string;
  json?: boolean;
  trainDomain?: string;
  legacyNormalization?: boolean;
  folds?: string;
  shard?: string;
  regions?: string;
}

/** The run flags that name a file or folder: relative to the run file's folder when written there. */
const RUN_FILE_PATH_FLAGS = ['data', 'model', 'out', 'imagesDir', 'regions', 'target', 'db', 'resume'];

async function requestFromFlags(flags: RunFlags): Promise<{ request: RunRequest; runsDir: string; resumeDir?: string }> {
  if (flags.resume) {
    const resumeDir = resolve(flags.resume);
    const file = join(resumeDir, 'request.json');
    if (!existsSync(file)) throw new InputError('not an interrupted run folder (no request.json); give the <id>.partial folder of the run', { file: resumeDir });
    let stored: unknown;
    try {
      stored = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      // A request.json cut off by a full disk or edited by hand: the user's file, not a vlbench bug.
      throw new InputError(`not a readable run request (cut off or edited?): ${(error as Error).message}; start the run again without --resume`, { file });
    }
    const parsed = runRequestSchema.safeParse(stored);
    if (!parsed.success) throw new InputError(`not a vlbench run request: ${parsed.error.issues[0].message}`, { file, field: parsed.error.issues[0].path.join('.') });
    return { request: parsed.data, runsDir: dirname(resumeDir), resumeDir };
  }
  for (const [flag, value] of [['--task', flags.task], ['--data', flags.data], ['--method', flags.method]] as const) {
    if (!value) throw new InputError(`${flag} is required (or --resume RUN_DIR)`);
  }
  if (!RUN_TASKS.includes(flags.task!)) throw new InputError(`--task "${flags.task}" is not a task; expected one of ${RUN_TASKS.join(', ')}`, { field: '--task' });
  const request: RunRequest = {
    task: flags.task!,
    dataDir: resolve(flags.data!),
    modelDir: flags.model ? resolve(flags.model) : undefined,
    method: flags.method!,
    sets: parseSetOptions(flags.set),
    seed: parseSeed('--seed', flags.seed),
    epochs: flags.epochs === undefined ? undefined : parsePositiveInteger('--epochs', flags.epochs),
    split: flags.split,
    trainSplit: flags.trainSplit,
    validationSplit: flags.validationSplit,
    ...(flags.selectOnEvaluation ? { selectOnEvaluation: true } : {}),
    imagesDir: flags.imagesDir ? resolve(flags.imagesDir) : undefined,
    revision: flags.revision,
    targetDir: flags.target ? resolve(flags.target) : undefined,
    targetQuestionsFile: flags.targetQuestions ? resolve(flags.targetQuestions) : undefined,
    regionsFile: flags.regions ? resolve(flags.regions) : undefined,
    backend: flags.backend as RunRequest['backend'],
    name: flags.name,
    maxTrainExamples: flags.maxTrain === undefined ? undefined : parsePositiveInteger('--max-train', flags.maxTrain),
    limit: flags.limit === undefined ? undefined : parsePositiveInteger('--limit', flags.limit),
    trainDomain: flags.trainDomain as RunRequest['trainDomain'],
    scoring: scoringOptionsFromFlags(getTask(flags.task!), flags),
    shard: flags.shard === undefined ? undefined : parseShard('--shard', flags.shard),
  };
  return { request, runsDir: resolve(flags.out) };
}

export function formatRunOutcome(outcome: RunOutcome): string {
  const lines = [`run ${outcome.name} → ${outcome.runDir} (backend ${outcome.backend})`];
  if (outcome.training) {
    const t = outcome.training;
    lines.push(`  trained ${t.steps} steps in ${t.seconds.toFixed(1)} s (${t.samplesPerSecond.toFixed(1)} samples/s)${t.stoppedEarly ? ', stopped early' : ''}${t.bestStep !== null ? `, best validation at step ${t.bestStep}` : ''}`);
  }
  for (const { split, report, record } of outcome.splits) {
    const metrics = Object.entries(report.metrics)
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    lines.push(`  ${split}: ${metrics}${record ? ` [recorded ${record.id}]` : ''}`);
  }
  return lines.join('\n');
}

export function registerRun(program: Command): void {
  const settingsHelp = describeSettings()
    .map((row) => `  ${row.key.padEnd(28)} ${JSON.stringify(row.default).padEnd(10)} ${row.doc}`)
    .join('\n');
  program
    .command('run')
    .description(COMMAND_SUMMARIES.run.description)
    .option('--task <name>', `task: ${RUN_TASKS.join(' | ')}`)
    .option('--data <dir>', 'dataset folder: a SynthScenes folder, or the task\'s official layout; vqa, gqa, retrieval: also a Hugging Face snapshot of lmms-lab/VQAv2, lmms-lab/GQA or lmms-lab/flickr30k (parquet) or its datasets--lmms-lab--… cache folder')
    .option('--revision <ref>', 'with a Hugging Face cache folder as --data: the snapshot to read, a ref (main) or a commit; default refs/main')
    .option('--model <dir>', 'model folder (default: the bundled SynthScenes CLIP)')
    .option('--method <spec>', 'zeroshot (retrieval) | ft, plus +sg +adv +mmd +dann, e.g. ft+sg+adv')
    .option('--seed <n>', 'run seed: data order, head initialisation, perturbations', '0')
    .option('--epochs <n>', `training epochs (default ${TRAINING_DEFAULTS.epochs}, or the task's own)`)
    .option('--out <dir>', 'folder of run folders', 'runs')
    .option('--split <name>', 'evaluation split (SynthScenes: test or val, both domains scored; default test)')
    .option('--train-split <name>', 'training split (real datasets; a zero-shot run needs none)')
    .option('--validation-split <name>', `validation split for model selection (real datasets; default: ${HELD_OUT_FRACTION * 100}% of the training images, the same ones every run and seed, held out by image with their examples)`)
    .option('--select-on-evaluation', 'allow --validation-split to be the evaluation split: the weights are chosen on the numbers reported, and the run is marked so')
    .option('--images-dir <dir>', 'images root where it is not inside --data (COCO, GQA)')
    .option('--regions <file>', 'vqa, gqa: COCO-style detections ({image_id, bbox: [x, y, w, h] px, score}) whose boxes become object tokens (SynthScenes: DATA/detections/true_boxes.json or detector.json); without it, the grid\'s cells are the objects')
    .option('--target <dir>', 'folder of unlabelled target-domain images for mmd/dann (real datasets)')
    .option('--target-questions <file>', 'VQA/GQA: unlabelled target-domain questions in the task\'s questions format, images under --target; mmd/dann align target images with them (answers never read)')
    .option('--set <key=value...>', 'override a setting (repeatable); see the list below', [])
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(leaderboardDbOption())
    .option('--no-record', 'do not record the run in the leaderboard')
    .option('--name <name>', 'name shown in the leaderboard (default task:method)')
    .option('--resume <run_dir>', 'continue an interrupted run from its <id>.partial folder')
    .option('--max-train <n>', 'use at most n training examples (quick checks)')
    .option('--limit <n>', 'a smoke run: the first n examples of every split the run reads (training, validation, evaluation), in file order; recorded, and ranked only beside runs with the same limit')
    .addOption(new Option('--train-domain <domain>', 'SynthScenes: train on this domain\'s labels (target = the oracle reference for adaptation)').choices(['source', 'target']))
    .option('--legacy-normalization', 'vqa: score with the pre-2021 evaluator normalisation (its own comparability key)')
    .option('--folds <n>', 'retrieval: average over n folds of the evaluation split (COCO 1K = 5 of the 5K test set)')
    .option('--shard <k/n>', 'train, then predict only shard k of n (numbered from 1: 1/3, 2/3, 3/3) of the evaluation examples sorted by id; score with vlbench merge-shards')
    .option('--json', 'print the outcome as JSON')
    .option('--config <file>', 'a run file (YAML or JSON) of these flags without dashes (max-train: 100, set: {key: value}); flags given here override it; its relative paths are relative to its folder')
    .hook('preAction', async (command) => {
      const file = command.getOptionValue('config') as string | undefined;
      if (file !== undefined) await applyRunFile(command, file, RUN_FILE_PATH_FLAGS);
    })
    .addHelpText(
      'after',
      `\nWhat trains: the task's heads and fusion; on VQA and GQA (the relational fusion) also a word embedding per question word,\n` +
        `added to the encoder's text tokens (the bundled CLIP never saw "how", "many" or plural shape names in pretraining).\n` +
        `The encoder's blocks stay frozen unless --set encoder.train_blocks=N|all; --regions object crops always come from the frozen encoder.\n` +
        `\nSettings (--set key=value; objectives' and task losses' as <objective>.<key>=value), with their defaults:\n${settingsHelp}\n`,
    )
    .action(async (flags: RunFlags) => {
      const { request, runsDir, resumeDir } = await requestFromFlags(flags);
      // A shard is recorded once merged (vlbench merge-shards), never on its own.
      const outcome = await executeRun(request, { db: flags.record && !request.shard ? (isPostgresLocation(flags.db) ? flags.db : resolve(flags.db)) : null, runsDir, resumeDir });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ runDir: outcome.runDir, name: outcome.name, backend: outcome.backend, splits: outcome.splits.map((s) => ({ split: s.split, metrics: s.report.metrics, official: s.report.official, recordId: s.record?.id ?? null })), timings: outcome.timings }, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatRunOutcome(outcome)}\n`);
        if (request.shard) process.stdout.write(`  shard ${request.shard.number}/${request.shard.count}: predictions in ${join(outcome.runDir, 'shards')}; score with vlbench merge-shards and every shard's folder\n`);
      }
    });
}
