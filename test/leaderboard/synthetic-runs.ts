import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../core/random.ts';
import type { ExampleScore } from '../../core/types.ts';
import type { RunRecordDraft } from '../../leaderboard/run-record.ts';

/** Made-up runs and per-example scores for the leaderboard tests. */

export const FINGERPRINT_A = 'a'.repeat(64);
export const FINGERPRINT_B = 'b'.repeat(64);

const createdFolders: string[] = [];
// ava runs each test file in its own process: the folders go when it exits.
process.on('exit', () => {
  for (const folder of createdFolders) rmSync(folder, { recursive: true, force: true });
});

/** A fresh folder under the OS temp dir, removed when the test process exits. */
export function temporaryFolder(label: string): string {
  const folder = mkdtempSync(join(tmpdir(), `vlbench-${label}-`));
  createdFolders.push(folder);
  return folder;
}

export function temporaryDbPath(label = 'lb'): string {
  return join(temporaryFolder(label), 'leaderboard.db');
}

/** 0/100 per example, each right with probability `accuracy`, ids "q0".."q{n-1}". */
export function bernoulliScores(n: number, accuracy: number, seed: number): ExampleScore[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: n }, (_, i) => ({ id: `q${i}`, score: random.next() < accuracy ? 100 : 0 }));
}

export function meanScore(scores: readonly ExampleScore[]): number {
  return scores.reduce((sum, entry) => sum + entry.score, 0) / scores.length;
}

/** A complete draft whose primary metric is the mean of `perExample`. */
export function syntheticDraft(name: string, perExample: readonly ExampleScore[] | null, overrides: Partial<RunRecordDraft> = {}): RunRecordDraft {
  const accuracy = perExample ? meanScore(perExample) : 50;
  return {
    name,
    task: 'vqa',
    taskVersion: '1',
    split: 'val/source',
    splitFingerprint: FINGERPRINT_A,
    metric: 'vqa-accuracy',
    metricVersion: '2',
    primaryMetric: 'overall',
    model: { name: 'clip-tiny', fingerprint: 'c'.repeat(64) },
    method: { spec: 'finetune', hyperparameters: { learningRate: 1e-4, epochs: 3, objectives: ['vqa-bce'] } },
    seed: 1,
    backend: 'wasm',
    versions: { vlbench: '0.1.0', node: '20.20.2', tfjs: '4.22.0', transformersJs: '4.3.1', sharp: '0.35.5' },
    gitCommit: null,
    timings: { train: 12.5, score: 0.25 },
    metrics: { overall: accuracy, 'answerType/yes/no': 71.25, 'answerType/number': 40.5 },
    perExamplePath: null,
    predictions: null,
    ...overrides,
  };
}

/** 60 right answers lost and 60 gained: the same mean, pure noise. */
export function noisy(scores: ExampleScore[]): ExampleScore[] {
  let lost = 0;
  let gained = 0;
  return scores.map((s) => {
    if (s.score === 100 && lost < 60) return lost++, { ...s, score: 0 };
    if (s.score === 0 && gained < 60) return gained++, { ...s, score: 100 };
    return s;
  });
}
