import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildBoard } from '../../leaderboard/board.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { bernoulliScores, syntheticDraft, temporaryDbPath, temporaryFolder } from './synthetic-runs.ts';

/**
 * The HTML leaderboard checked in a real browser: headless Chromium loads the page, runs its
 * script, lays it out, and a probe appended to the page reports what a reader sees. .ci/run
 * installs Debian's chromium, so CI always runs this; elsewhere it is skipped, and says so.
 */
const CHROMIUM = '/usr/bin/chromium';
const run = promisify(execFile);
const TITLE = 'the HTML page renders in headless Chromium: every run, ranks, seed-group intervals, bars, curves and a working sort';

function chromiumFlags(profile: string): string[] {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--window-size=1200,900'];
}

/**
 * Runs in the page after its own script: reads the rendered table and chart, clicks the
 * primary-metric header (the page's sort), and leaves its findings as JSON in the DOM.
 */
const PROBE = `<script>
(function () {
  var table = document.querySelector('table.runs-table');
  var names = function () { return Array.prototype.map.call(table.tBodies[0].rows, function (row) { return row.querySelector('.run-name').textContent; }); };
  var report = { ranked: names() };
  report.ranks = Array.prototype.map.call(table.querySelectorAll('td.rank'), function (cell) { return cell.textContent; });
  report.spreads = Array.prototype.map.call(table.querySelectorAll('td.spread'), function (cell) { return cell.textContent; });
  report.rowHeights = Array.prototype.map.call(table.tBodies[0].rows, function (row) { return row.getBoundingClientRect().height; });
  report.barWidths = Array.prototype.map.call(document.querySelectorAll('g.bar rect'), function (rect) { return rect.getBBox().width; });
  report.whiskers = document.querySelectorAll('path.whisker').length;
  report.curves = document.querySelectorAll('path.curve').length;
  table.querySelector('th[data-column="5"] button').click();
  report.ascending = names();
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
})();
</script>`;

if (existsSync(CHROMIUM)) {
  test(TITLE, async (t) => {
    const store = await openLeaderboard(temporaryDbPath('html'), { create: true });
    const singles = ['finetune', 'zero-shot', 'villa <i>"quoted"</i>'];
    for (const [i, name] of singles.entries()) {
      const scores = bernoulliScores(200, 0.4 + i / 10, i);
      await recordRun(store, syntheticDraft(name, scores, { method: { spec: name, hyperparameters: {} }, curve: [{ step: 0, loss: 2 }, { step: 10, loss: 1 - i / 10 }] }), scores);
    }
    // A seed group with per-example scores: its row shows ± std and the interval over seeds and examples.
    for (const seed of [0, 1, 2]) {
      const scores = bernoulliScores(200, 0.75, 10 + seed);
      await recordRun(store, syntheticDraft(`ft+mmd-seed${seed}`, scores, { seed, method: { spec: 'ft+mmd', hyperparameters: { seed } } }), scores);
    }
    const board = await buildBoard(await listRuns(store), (id) => exampleScores(store, id), { resamples: 200 });
    await store.close();
    const rows = board.sections[0].rows;
    const group = rows.find((row) => row.name === 'ft+mmd')!;
    t.is(group.primary.intervalOver, 'seeds and examples');

    const folder = temporaryFolder('html');
    const page = join(folder, 'leaderboard.html');
    writeFileSync(page, renderHtml(board).replace('</body>', `${PROBE}\n</body>`));
    const { stdout: dom } = await run(CHROMIUM, [...chromiumFlags(join(folder, 'profile')), '--dump-dom', `file://${page}`], { timeout: 120_000, maxBuffer: 16 << 20 });
    const probe = /<pre id="probe">(.*?)<\/pre>/s.exec(dom);
    t.truthy(probe, 'the probe ran in the page');
    const report = JSON.parse(probe![1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));

    // Ranked best first, as the board ranked them; the escaped name shows as typed.
    t.deepEqual(report.ranked, rows.map((row) => row.name));
    t.deepEqual(report.ranked, ['ft+mmd', 'villa <i>"quoted"</i>', 'zero-shot', 'finetune']);
    t.deepEqual(report.ranks, ['1', '2', '3', '4']);
    const fixed = (value: number) => value.toFixed(2);
    const interval = (row: (typeof rows)[number]) => `[${fixed(row.primary.interval!.lower)}, ${fixed(row.primary.interval!.upper)}]`;
    t.deepEqual(report.spreads, [`± ${fixed(group.primary.std!)} ${interval(group)}`, ...rows.slice(1).map(interval)]);
    t.true(report.rowHeights.every((height: number) => height > 10), `row heights ${report.rowHeights}`);
    t.is(report.barWidths.length, 4);
    t.true(report.barWidths.every((width: number) => width > 0), `bar widths ${report.barWidths}`);
    t.is(report.whiskers, 4);
    t.is(report.curves, 3);
    // The page's own script sorted the table by the primary metric, lowest first.
    t.deepEqual(report.ascending, [...report.ranked].reverse());
  });
} else {
  console.log(`html-render: skipped, no Chromium at ${CHROMIUM} (Debian: apt-get install -y chromium)`);
  test.skip(`${TITLE} (needs ${CHROMIUM}: apt-get install -y chromium)`, () => {});
}
