import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { buildBoard, type Board } from '../../leaderboard/board.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { CSV_FIXED_COLUMNS, renderCsv, renderMarkdown, renderTable } from '../../leaderboard/render-text.ts';
import { comparabilityKey } from '../../leaderboard/run-record.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun, type LeaderboardStore } from '../../leaderboard/store.ts';
import { registerLeaderboard } from '../../cli/commands/leaderboard.ts';
import { bernoulliScores, FINGERPRINT_B, meanScore, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';

/** A board with every way two runs can fail to be comparable, seed groups, a tie and curves. */
async function populatedStore(): Promise<LeaderboardStore> {
  const store = await openLeaderboard(temporaryDbPath('board'), { create: true });
  const scoresA = bernoulliScores(300, 0.62, 1);
  const scoresB = bernoulliScores(300, 0.55, 2);
  await recordRun(store, syntheticDraft('finetune', scoresA, { curve: [{ step: 0, loss: 2 }, { step: 50, loss: 1.1 }, { step: 100, loss: 0.7 }] }), scoresA);
  await recordRun(store, syntheticDraft('zero-shot', scoresB, { method: { spec: 'zero-shot', hyperparameters: {} } }), scoresB);
  await recordRun(store, syntheticDraft('tie', null, { method: { spec: 'tie', hyperparameters: {} }, metrics: { overall: meanScore(scoresB) } }), null);
  for (const [seed, overall] of [[1, 60], [2, 62], [3, 64]] as const) {
    await recordRun(
      store,
      syntheticDraft(`villa-seed${seed}`, null, {
        seed,
        method: { spec: 'finetune+villa', hyperparameters: { steps: 3, seed } },
        metrics: { overall, 'answerType/yes/no': 70 + seed },
        curve: [{ step: 0, loss: 2 + seed / 10 }, { step: 100, loss: 0.8 + seed / 10 }],
      }),
      null,
    );
  }
  // One field of the comparability key changed at a time, plus another task.
  await recordRun(store, syntheticDraft('newer-task-version', null, { taskVersion: '2' }), null);
  await recordRun(store, syntheticDraft('other-images', null, { splitFingerprint: FINGERPRINT_B }), null);
  await recordRun(store, syntheticDraft('new-metric', null, { metricVersion: '3' }), null);
  await recordRun(store, syntheticDraft('test-split', null, { split: 'test/source' }), null);
  await recordRun(store, syntheticDraft('vcr run <b>&"', null, { task: 'vcr', metric: 'vcr-accuracy', primaryMetric: 'q2ar', metrics: { q2a: 70, qa2r: 71, q2ar: 50 } }), null);
  return store;
}

async function boardOf(store: LeaderboardStore, task?: string): Promise<Board> {
  return buildBoard(await listRuns(store, { task }), (id) => exampleScores(store, id), { resamples: 300, seed: 1 });
}

test('runs are ranked only within their comparability key', async (t) => {
  const store = await populatedStore();
  const board = await boardOf(store);
  t.is(board.runCount, 11);
  t.is(board.sections.length, 6);
  const byId = new Map((await listRuns(store)).map((run) => [run.record.id, run.record]));
  for (const section of board.sections) {
    t.deepEqual(section.rows.map((row) => row.rank)[0], 1);
    for (const row of section.rows) for (const id of row.runIds) t.deepEqual(comparabilityKey(byId.get(id)!), section.key);
  }
  const main = board.sections.find((s) => s.rows.length > 1)!;
  t.deepEqual(
    main.rows.map((row) => [row.rank, row.name]),
    [[1, 'villa'], [2, 'finetune'], [3, 'tie'], [3, 'zero-shot']],
    'equal means share a rank; the 4 loners each head their own table',
  );
  t.deepEqual(board.sections.filter((s) => s.rows.length === 1).map((s) => s.rows[0].name).sort(), ['new-metric', 'newer-task-version', 'other-images', 'test-split', 'vcr run <b>&"'].sort());
  await store.close();
});

test('runs identical but for the seed fold into mean ± std; single runs get a bootstrap interval', async (t) => {
  const store = await populatedStore();
  const main = (await boardOf(store)).sections.find((s) => s.rows.length > 1)!;
  const villa = main.rows.find((row) => row.name === 'villa')!;
  t.deepEqual(villa.seeds, [1, 2, 3]);
  // No per-example scores: mean ± std only, no interval over seeds and examples.
  t.deepEqual(villa.primary, { mean: 62, std: 2, n: 3, interval: null, intervalOver: null });
  t.deepEqual(villa.metrics['answerType/yes/no'], { mean: 72, std: 1 });
  t.is(villa.curves.length, 3);
  const finetune = main.rows.find((row) => row.name === 'finetune')!;
  t.is(finetune.primary.n, 1);
  t.is(finetune.primary.std, null);
  t.true(finetune.primary.interval!.lower < finetune.primary.mean && finetune.primary.mean < finetune.primary.interval!.upper);
  t.is(finetune.primary.interval!.resamples, 300);
  t.deepEqual(await boardOf(store), await boardOf(store), 'the board is deterministic');
  await store.close();
});

/** RFC 4180: quoted fields, doubled quotes, commas and newlines inside quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\n') row.push(field), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  if (field !== '' || row.length) row.push(field), rows.push(row);
  return rows;
}

test('the CSV parses back to exactly the numbers on the board', async (t) => {
  const store = await populatedStore();
  const board = await boardOf(store);
  const [header, ...rows] = parseCsv(renderCsv(board));
  t.deepEqual(header.slice(0, CSV_FIXED_COLUMNS.length), [...CSV_FIXED_COLUMNS]);
  t.is(rows.length, board.sections.reduce((n, s) => n + s.rows.length, 0));
  const column = (row: string[], name: string) => row[header.indexOf(name)];
  const number = (cell: string) => (cell === '' ? null : Number(cell));
  let index = 0;
  for (const section of board.sections) {
    for (const boardRow of section.rows) {
      const row = rows[index++];
      t.is(row.length, header.length);
      t.is(column(row, 'task'), section.key.task);
      t.is(column(row, 'split_fingerprint'), section.key.splitFingerprint);
      t.is(column(row, 'name'), boardRow.name);
      t.is(number(column(row, 'rank')), boardRow.rank);
      t.is(column(row, 'run_ids'), boardRow.runIds.join(';'));
      t.is(number(column(row, 'n_seeds')), boardRow.seeds.length);
      t.is(number(column(row, 'primary_mean')), boardRow.primary.mean);
      t.is(number(column(row, 'primary_std')), boardRow.primary.std);
      t.is(number(column(row, 'ci_lower')), boardRow.primary.interval?.lower ?? null);
      t.is(number(column(row, 'ci_upper')), boardRow.primary.interval?.upper ?? null);
      t.deepEqual(JSON.parse(column(row, 'hyperparameters')), boardRow.hyperparameters);
      for (const name of section.metricNames) {
        t.is(number(column(row, `metric:${name}`)), boardRow.metrics[name]?.mean ?? null);
        t.is(number(column(row, `metric:${name}:std`)), boardRow.metrics[name]?.std ?? null);
      }
    }
  }
  t.is(column(rows.find((r) => column(r, 'task') === 'vcr')!, 'name'), 'vcr run <b>&"');
  await store.close();
});

test('table and Markdown show every row under its own key', async (t) => {
  const store = await populatedStore();
  const board = await boardOf(store);
  const table = renderTable(board);
  const markdown = renderMarkdown(board);
  for (const section of board.sections) for (const row of section.rows) t.true(table.includes(row.name), row.name);
  t.regex(table, /villa +clip-tiny +finetune\+villa +3 \(1, 2, 3\) +62\.00 ± 2\.00/);
  t.regex(table, /11 runs in 6 comparability groups/);
  t.is((markdown.match(/^### /gm) ?? []).length, 6);
  t.true(markdown.includes('vcr run \\<b\\>&"'));
  t.is(renderTable(await buildBoard([], () => [])), 'No runs recorded yet.\n');
  await store.close();
});

test('the HTML page is self-contained, escapes run names and draws bars and curves', async (t) => {
  const store = await populatedStore();
  const html = renderHtml(await boardOf(store), { generator: 'vlbench test' });
  t.false(/https?:\/\//.test(html.replace('http://www.w3.org/2000/svg', '')), 'no network references');
  t.false(/<link|<img|src=|@import|url\(/.test(html));
  t.false(html.includes('<b>&"'));
  t.true(html.includes('vcr run &lt;b&gt;&amp;&quot;'));
  t.is((html.match(/<section class="board"/g) ?? []).length, 6);
  t.is((html.match(/<tr class="run"/g) ?? []).length, 9);
  t.is((html.match(/<path class="curve"/g) ?? []).length, 4);
  t.regex(html, /<path class="whisker std"/);
  await store.close();
});

test.serial('vlbench leaderboard writes each format atomically to --out and filters by --task', async (t) => {
  const store = await populatedStore();
  const db = store.location;
  await store.close();
  const out = join(dirname(db), 'out', 'board.csv');
  const program = new Command().exitOverride();
  registerLeaderboard(program);
  const writeErr = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['leaderboard', '--db', db, '--format', 'csv', '--out', out, '--task', 'vcr', '--resamples', '200'], { from: 'user' });
    for (const format of ['html', 'md', 'json', 'table']) {
      await program.parseAsync(['leaderboard', '--db', db, '--format', format, '--out', join(dirname(out), `board.${format}`)], { from: 'user' });
    }
  } finally {
    process.stderr.write = writeErr;
  }
  const rows = parseCsv(readFileSync(out, 'utf8'));
  t.is(rows.length, 2);
  t.is(rows[1][CSV_FIXED_COLUMNS.indexOf('task')], 'vcr');
  t.deepEqual(readdirSync(dirname(out)).sort(), ['board.csv', 'board.html', 'board.json', 'board.md', 'board.table'], 'no temporary files left');
  t.is(JSON.parse(readFileSync(join(dirname(out), 'board.json'), 'utf8')).runCount, 11);
  t.true(existsSync(join(dirname(out), 'board.html')));
});
