import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../../harness/demo.ts';

/**
 * `vlbench demo`, the README's headline command, end to end at a CI size: tiny folders, one
 * epoch, `ft` only, no tuned runs. What a user relies on: every planned run finishes and shows
 * in the comparison, VQA sits beside its floor, the leaderboard holds every task and split, and
 * the HTML page is written.
 */
test('the demo runs every task end to end and prints its comparison, VQA beside its prior, and the leaderboard', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'vlbench-demo-'));
  const lines: string[] = [];
  const result = await runDemo({ outDir: out, images: 12, vqaImages: 12, seed: 0, epochs: { vqa: 1, vcr: 1, retrieval: 1 }, methods: ['ft'], tasks: ['vqa', 'vcr', 'retrieval'], encoderBlocks: 0, backend: 'wasm', log: (line) => lines.push(line) });
  t.deepEqual(result.outcomes.map((o) => `${o.task} ${o.method}`), ['vqa ft', 'vcr ft', 'retrieval zeroshot', 'retrieval ft']);
  const rows = result.table.split('\n');
  t.regex(rows[0], /^task\s+method\s+metric\s+source\s+target\s+gap\s+train time$/);
  t.is(rows.length, 2 + result.outcomes.length);
  for (const { task, method } of result.outcomes) t.true(rows.some((row) => row.startsWith(task) && row.includes(` ${method} `)), `${task} ${method}`);
  // VQA's row beside its floor: the prior of the training split, per question type.
  const floors = result.floors.split('\n');
  t.regex(floors[0], /^vqa, test\/source\s+overall \(prior\)/);
  t.regex(floors[2], /^ft\s+\d+\.\d\d \(\d+\.\d\d\)/);
  // One leaderboard section per task and split, every run in its own; the page and the database are written.
  for (const section of ['vqa vqa-v2/1 · test/source', 'vqa vqa-v2/1 · test/target', 'vcr 1 · test/source', 'retrieval']) t.true(result.leaderboard.includes(section), section);
  t.true(existsSync(join(out, 'leaderboard.db')));
  t.regex(await readFile(result.htmlFile, 'utf8'), /<table/);
  t.true(lines.some((line) => line.startsWith('[4/4]')), lines.join('\n'));
});
