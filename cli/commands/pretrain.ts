import { Option, type Command } from 'commander';
import { BACKEND_CHOICES, parseBackendChoice } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { PRETRAIN_CONFIG_NAMES, PRETRAIN_LOSSES, type PretrainConfigName, type PretrainLoss } from '../../models/pretrain.ts';
import type { TrainingSettings } from '../../models/train.ts';
import { SYNTH_DOMAINS, type SynthDomain } from '../../tasks/synth/index.ts';
import { runPretrain, type PretrainOptions } from '../../harness/pretrain-run.ts';
import { parsePositiveInteger, parsePositiveNumber, parseSeed } from '../flags.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

export interface PretrainFlags {
  data?: string;
  out?: string;
  config?: string;
  init?: string;
  domain?: string;
  epochs?: string;
  batch?: string;
  seed?: string;
  lr?: string;
  weightDecay?: string;
  backend?: string;
  resume?: boolean;
  checkpointEvery?: string;
  dtype?: string;
  loss?: string;
}

/**
 * `vlbench pretrain`: contrastive (CLIP) pretraining on a SynthScenes folder's retrieval
 * captions, writing a complete Hugging Face model folder.
 *
 *   vlbench pretrain --data SYNTH_DIR --out MODEL_DIR [--config tiny|small] [--init MODEL_DIR]
 *                    [--epochs E] [--batch B] [--seed S] [--lr X] [--backend B] [--resume] [--loss infonce|sigmoid]
 */
export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description(COMMAND_SUMMARIES.pretrain.description)
    .requiredOption('--data <dir>', 'SynthScenes folder (vlbench synth)')
    .requiredOption('--out <dir>', 'model folder to write (must not exist); checkpoints go to <dir>.partial/ until it is complete')
    .option('--config <name>', `model size: ${PRETRAIN_CONFIG_NAMES.join(' | ')} (default small)`)
    .option('--init <dir>', 'continue from this model folder (its config and tokenizer) instead of fresh weights')
    .option('--domain <name>', `which domain's train split to learn from: ${SYNTH_DOMAINS.join(' | ')}`, 'source')
    .option('--epochs <n>', 'passes over the training images', '10')
    .option('--batch <n>', 'image-caption pairs per step (the InfoNCE negatives)', '64')
    .option('--seed <n>', 'seed of initialisation, batch order and caption draws', '0')
    .option('--lr <x>', 'peak learning rate (AdamW, 10% linear warmup, cosine decay)', '0.001')
    .option('--weight-decay <x>', 'AdamW weight decay (matrices only)', '0.1')
    .option('--checkpoint-every <n>', 'steps between checkpoints', '25')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--dtype <type>', 'how model.safetensors stores the weights: f32 | f16 (half the size; training is always float32)', 'f32')
    .option('--resume', 'continue the interrupted run whose checkpoint is in <out>.partial/')
    .option('--loss <name>', `contrastive loss: infonce (CLIP's softmax over the batch) | sigmoid (SigLIP's pairwise sigmoid, learnable bias; starts at t = 10, b = -10)`, 'infonce')
    .action(async (flags: PretrainFlags) => {
      const { folder, recipe } = await runPretrain(pretrainOptionsFromFlags(flags), (line) => process.stdout.write(`${line}\n`), process.argv.slice(2));
      process.stdout.write(
        `wrote ${folder}: ${recipe.steps} steps in ${recipe.seconds.toFixed(0)} s (${recipe.samplesPerSecond.toFixed(1)} samples/s), final loss ${recipe.finalLoss.toFixed(4)}, logit scale ${recipe.logitScale.toFixed(2)}\n`,
      );
    });
}

/** Checks every flag of `vlbench pretrain` and turns them into the run's typed options. */
export function pretrainOptionsFromFlags(flags: PretrainFlags): PretrainOptions {
  if (!flags.data) throw new InputError('--data is required (a SynthScenes folder)', { field: '--data' });
  if (!flags.out) throw new InputError('--out is required (the model folder to write)', { field: '--out' });
  if (flags.config !== undefined && !(PRETRAIN_CONFIG_NAMES as readonly string[]).includes(flags.config)) {
    throw new InputError(`unknown config "${flags.config}"; expected one of ${PRETRAIN_CONFIG_NAMES.join(', ')}`, { field: '--config' });
  }
  const domain = (flags.domain ?? 'source') as SynthDomain;
  if (!(SYNTH_DOMAINS as readonly string[]).includes(domain)) throw new InputError(`unknown domain "${flags.domain}"; expected one of ${SYNTH_DOMAINS.join(', ')}`, { field: '--domain' });
  const seed = parseSeed('--seed', flags.seed ?? '0');
  const settings: Partial<TrainingSettings> = {
    epochs: parsePositiveInteger('--epochs', flags.epochs ?? '10'),
    batchSize: parsePositiveInteger('--batch', flags.batch ?? '64'),
    learningRate: parsePositiveNumber('--lr', flags.lr ?? '0.001'),
    weightDecay: parsePositiveNumber('--weight-decay', flags.weightDecay ?? '0.1', { allowZero: true }),
    checkpointEvery: parsePositiveInteger('--checkpoint-every', flags.checkpointEvery ?? '25'),
    warmupFraction: 0.1,
    schedule: 'cosine',
    maxGradNorm: 1,
    seed,
  };
  const loss = flags.loss ?? 'infonce';
  if (!(PRETRAIN_LOSSES as readonly string[]).includes(loss)) throw new InputError(`unknown loss "${flags.loss}"; expected one of ${PRETRAIN_LOSSES.join(', ')}`, { field: '--loss' });
  const dtype = flags.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new InputError(`expected f32 or f16, got ${JSON.stringify(flags.dtype)}`, { field: '--dtype' });
  return {
    data: flags.data,
    out: flags.out,
    config: flags.config as PretrainConfigName | undefined,
    init: flags.init,
    domain,
    seed,
    settings,
    backend: parseBackendChoice(flags.backend ?? 'auto'),
    resume: flags.resume === true,
    dtype,
    ...(loss === 'infonce' ? {} : { loss: loss as PretrainLoss }),
  };
}
