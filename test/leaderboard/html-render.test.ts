import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildBoard } from '../../leaderboard/board.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { bernoulliScores, syntheticDraft, temporaryDbPath, temporaryFolder } from './synthetic-runs.ts';

const CHROMIUM = '/usr/bin/chromium';
const run = promisify(execFile);

function chromiumFlags(profile: string): string[] {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--window-size=1200,900'];
}

const renderTest = existsSync(CHROMIUM) ? test : test.skip;
if (!existsSync(CHROMIUM)) test('headless Chromium check (skipped: /usr/bin/chromium is absent; apt-get install -y chromium)', (t) => t.pass());

renderTest('the HTML page renders in headless Chromium and its DOM shows every run', async (t) => {
  const store = await openLeaderboard(temporaryDbPath('html'), { create: true });
  const names = ['finetune', 'zero-shot', 'villa <i>"quoted"</i>'];
  for (const [i, name] of names.entries()) {
    const scores = bernoulliScores(200, 0.4 + i / 10, i);
    await recordRun(store, syntheticDraft(name, scores, { method: { spec: name, hyperparameters: {} }, curve: [{ step: 0, loss: 2 }, { step: 10, loss: 1 - i / 10 }] }), scores);
  }
  const html = renderHtml(await buildBoard(await listRuns(store), (id) => exampleScores(store, id), { resamples: 200 }));
  await store.close();

  const folder = temporaryFolder('html');
  const page = join(folder, 'leaderboard.html');
  writeFileSync(page, html);
  const { stdout: dom } = await run(CHROMIUM, [...chromiumFlags(join(folder, 'profile-dom')), '--dump-dom', `file://${page}`], { timeout: 120_000, maxBuffer: 16 << 20 });
  t.is((dom.match(/<tr class="run"/g) ?? []).length, 3);
  for (const name of ['finetune', 'zero-shot', 'villa &lt;i&gt;"quoted"&lt;/i&gt;']) t.true(dom.includes(`<span class="run-name">${name}</span>`), name);
  t.is((dom.match(/<path class="curve"/g) ?? []).length, 3);
  t.is((dom.match(/<g class="bar">/g) ?? []).length, 3);
});
