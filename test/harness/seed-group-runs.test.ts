import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';

/**
 * Issue 30: three `vlbench run … --seed 0|1|2 --name base` runs form one seed group on the
 * board (their records carry the seed in `training.seed` too), tiny as in run.test.ts.
 */
const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;

test('three vlbench runs that differ only in --seed are one board row per split, over seeds and images, and compare NAME NAME compares the groups', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'vlbench-seed-group-'));
  const data = join(root, 'synth');
  // 32 px matches the tiny fixture CLIP's input size.
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
  const db = join(root, 'board.db');
  for (const seed of [0, 1, 2]) {
    const run = await vlbench(['run', '--task', 'vqa', '--data', data, '--model', fixtureModel, '--method', 'ft', '--seed', String(seed), '--name', 'base', '--epochs', '1', '--backend', 'wasm', '--out', join(root, 'runs'), '--db', db]);
    t.is(run.code, 0, run.stderr);
  }
  const { code, stdout, stderr } = await vlbench(['leaderboard', '--db', db, '--format', 'json', '--resamples', '200']);
  t.is(code, 0, stderr);
  const board = JSON.parse(stdout) as {
    sections: { key: { split: string }; rows: { name: string; seeds: number[]; runIds: string[]; hyperparameters: { training: Record<string, unknown> }; primary: { intervalOver: string | null } }[] }[];
  };
  t.deepEqual(board.sections.map((s) => s.key.split).sort(), ['test/source', 'test/target']);
  for (const section of board.sections) {
    t.is(section.rows.length, 1, `${section.key.split}: one row, not one per seed`);
    // VQA scores name their images, so the interval resamples seeds × images (all of an image's questions together).
    t.like(section.rows[0], { name: 'base', seeds: [0, 1, 2], primary: { intervalOver: 'seeds and images' } });
    t.is(section.rows[0].runIds.length, 3);
    t.false('seed' in section.rows[0].hyperparameters.training, 'the row shows what its runs share, not the first run\'s seed');
    t.is(section.rows[0].hyperparameters.training.epochs, 1);
  }
  // `compare NAME NAME` compares the two groups, seed by seed, not the latest run of each.
  for (const seed of [0, 1, 2]) {
    const run = await vlbench(['run', '--task', 'vqa', '--data', data, '--model', fixtureModel, '--method', 'ft', '--seed', String(seed), '--name', 'other', '--epochs', '1', '--set', 'lr=0.0001', '--backend', 'wasm', '--out', join(root, 'runs'), '--db', db]);
    t.is(run.code, 0, run.stderr);
  }
  const compared = await vlbench(['compare', 'base', 'other', '--db', db, '--format', 'json', '--resamples', '200', '--seeds', '0,1,2']);
  t.true(compared.code === 0 || compared.code === 1, compared.stderr);
  const report = JSON.parse(compared.stdout) as { base: { runIds: string[]; seeds: number[] }; candidate: { runIds: string[]; seeds: number[] } };
  t.deepEqual([report.base.seeds, report.candidate.seeds], [[0, 1, 2], [0, 1, 2]]);
  t.deepEqual([report.base.runIds.length, report.candidate.runIds.length], [3, 3]);
  const text = await vlbench(['compare', 'base', 'other', '--db', db, '--resamples', '200']);
  t.regex(text.stdout, /base: seed group of 3 runs \(seeds 0, 1, 2\)/);
});
