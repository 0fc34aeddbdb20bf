// Child process for store.test.ts: records `count` runs into the database at `path`,
// each with per-example scores, as one of `workers` concurrent writers.
import { existsSync, writeFileSync } from 'node:fs';
import { openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { bernoulliScores, syntheticDraft } from './synthetic-runs.ts';

const [path, worker, workers, count, examples] = process.argv.slice(2);

// A start barrier: module loading takes a while, and without it the writers might just take turns.
writeFileSync(`${path}.ready-${worker}`, '');
const deadline = Date.now() + 60_000;
const allReady = () => Array.from({ length: Number(workers) }, (_, w) => `${path}.ready-${w}`).every((file) => existsSync(file));
while (!allReady()) {
  if (Date.now() > deadline) throw new Error('the other writers never started');
  await new Promise((resolve) => setTimeout(resolve, 5));
}

const store = await openLeaderboard(path, { create: true });
for (let i = 0; i < Number(count); i++) {
  const scores = bernoulliScores(Number(examples), 0.5, Number(worker) * 1000 + i);
  await recordRun(store, syntheticDraft(`worker${worker}-run${i}`, scores, { seed: i }), scores);
}
await store.close();
