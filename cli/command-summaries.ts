/**
 * The one line each top-level command shows in `vlbench --help`, and the argument terms after
 * its `[options]`. Each command's module takes its description from here, and so do the
 * stand-ins cli/program.ts registers instead of the modules (cli/command-list.ts), so the two
 * cannot drift. This file imports nothing.
 */
export interface CommandSummary {
  /** The argument terms after `[options]`, as commander prints them (`<base> <candidate>`). */
  readonly arguments: string;
  readonly description: string;
}

export const COMMAND_SUMMARIES = {
  env: {
    arguments: '',
    description: 'print the backend that --backend auto picks and why, the WebGPU adapters seen, the versions of node, tfjs, transformers.js, sharp, and the CPU/GPU seen',
  },
  synth: {
    arguments: '',
    description: 'Generate the SynthScenes benchmark (VQA v2, GQA, VCR and Karpathy retrieval files, source and target domains) into a folder',
  },
  score: { arguments: '', description: 'score a predictions file with the official metric of a task; prints one JSON object' },
  encode: { arguments: '', description: 'embed images and/or texts with a CLIP-family model folder; writes JSON' },
  pretrain: { arguments: '', description: 'pretrain a CLIP contrastively (symmetric InfoNCE) on a SynthScenes folder; writes a Hugging Face model folder' },
  run: {
    arguments: '',
    description: 'fine-tune (or zero-shot) the encoder on a task, predict, score with the official metric, write a run folder and record it in the leaderboard',
  },
  leaderboard: {
    arguments: '',
    description: 'print or export the leaderboard: one ranked table per comparability key (task, task version, split, split fingerprint, metric, metric version, scoring options)',
  },
  compare: {
    arguments: '<base> <candidate>',
    description:
      'regression gate: paired bootstrap of CANDIDATE − BASE over matched examples (seed groups: over seeds and examples). Exit 0: no significant drop beyond --max-drop; ' +
      '1: regression (the upper end of the 95% interval of the difference is below −max-drop); 2: not comparable or bad input; 3: a bug in vlbench',
  },
  demo: {
    arguments: '',
    description:
      'generate SynthScenes, load the bundled CLIP, compare fine-tuning and adaptation methods on VQA and VCR (source → target), zero-shot and fine-tuned retrieval; print the comparison and the leaderboard, write its HTML page',
  },
  sweep: {
    arguments: '',
    description:
      'enqueue one job per run of a grid (tasks × methods × seeds × models × --set values) on a Redis queue for `vlbench worker`s; returns once enqueued. Enqueueing the same grid again adds only runs that have no result',
  },
  worker: { arguments: '', description: 'run sweep jobs from the Redis queue in child processes and record them into the shared leaderboard, until stopped' },
  'merge-shards': {
    arguments: '<shard_dirs...>',
    description:
      'score the shards of a sharded run (vlbench run --shard k/n) as one run: refused unless they come from one trained model and cover every example exactly once; writes a complete run folder and records it',
  },
} as const satisfies Record<string, CommandSummary>;

export type CommandName = keyof typeof COMMAND_SUMMARIES;
