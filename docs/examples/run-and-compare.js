// Two runs and the regression gate between them, from JavaScript (docs/api.md): what
// `vlbench run` twice and `vlbench compare BASE CANDIDATE` do. Takes minutes on a CPU.
//
//   node run-and-compare.js DATA_DIR RUNS_DIR   (DATA_DIR: a SynthScenes folder, `vlbench synth`)
import { join } from 'node:path';
import { executeRun, withLeaderboard, resolveComparedGroup, compareSeedGroups, formatComparison } from 'vlbench';

const [dataDir, runsDir] = process.argv.slice(2);
if (!dataDir || !runsDir) throw new Error('usage: node run-and-compare.js DATA_DIR RUNS_DIR');
const db = join(runsDir, 'leaderboard.sqlite');

// The same request as `vlbench run --task vqa --data DATA_DIR --method ft --epochs 1 --out RUNS_DIR --db …`.
const base = await executeRun({ task: 'vqa', dataDir, method: 'ft', epochs: 1, seed: 0 }, { db, runsDir });
const candidate = await executeRun({ task: 'vqa', dataDir, method: 'ft+sg', epochs: 1, seed: 0 }, { db, runsDir });
for (const outcome of [base, candidate]) console.log(outcome.name, outcome.splits.map((s) => `${s.split}: ${JSON.stringify(s.report.official)}`).join('; '));

// `vlbench compare`: the paired bootstrap over matched examples; exitCode 1 means a regression.
const comparison = await withLeaderboard(db, { create: false }, async (store) => {
  const { group: baseGroup } = await resolveComparedGroup(store, base.name, 'base', { task: 'vqa' });
  const { group: candidateGroup } = await resolveComparedGroup(store, candidate.name, 'candidate', { task: 'vqa' });
  return compareSeedGroups(baseGroup, candidateGroup, { maxDrop: 1 });
});
console.log(formatComparison(comparison));
process.exitCode = comparison.exitCode;
