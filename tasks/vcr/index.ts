import type { LoadedSplit, Task } from '../../core/types.ts';
import { VCR_TASK_VERSION, loadVcrSplit, type VcrExample } from './load.ts';
import { readVcrLeaderboardCsv, writeVcrLeaderboardCsv } from './leaderboard-csv.ts';
import { checkVcrPredictions, scoreVcr, type VcrPredictions } from './score.ts';
import { synthPaths } from '../synth/layout.ts';

export { GENDER_NEUTRAL_NAMES, joinWords, objectName, renderVcrTokens, type VcrText, type VcrToken } from './tags.ts';
export { VCR_ANNOTATIONS_FOLDER, VCR_CHOICES, VCR_IMAGES_FOLDER, VCR_TASK_VERSION, checkVcrImageData, loadVcrSplit, parseJsonl, type VcrBox, type VcrExample } from './load.ts';
export { VCR_METRIC_VERSION, argmaxFirst, checkVcrPredictions, scoreVcr, type VcrAccuracy, type VcrPredictions, type VcrProbabilities } from './score.ts';
export { VCR_CSV_COLUMNS, VCR_CSV_PROBABILITY_COLUMNS, readVcrLeaderboardCsv, writeVcrLeaderboardCsv } from './leaderboard-csv.ts';

/** Visual Commonsense Reasoning (rowanz/r2c): Q→A, QA→R, Q→AR over the leaderboard CSV. */
export const vcrTask: Task<VcrExample, VcrPredictions> = {
  name: 'vcr',
  version: VCR_TASK_VERSION,
  description: 'Visual Commonsense Reasoning (VCR): Q→A, QA→R and Q→AR accuracy; leaderboard CSV predictions',
  splits: ['train', 'val', 'test'],
  load: loadVcrSplit,
  async readPredictions(split: LoadedSplit<VcrExample>, file: string): Promise<VcrPredictions> {
    const predictions = await readVcrLeaderboardCsv(file);
    checkVcrPredictions(split, predictions, file);
    return predictions;
  },
  score(split, predictions) {
    return scoreVcr(split, predictions);
  },
  async writeSubmission(split, predictions, file) {
    checkVcrPredictions(split, predictions, 'predictions to write');
    await writeVcrLeaderboardCsv(file, split.examples.map((example) => example.id), predictions);
  },
  synthScenes: ({ root, subtype }) => ({ split: subtype, dataDir: synthPaths.vcrDir(root), files: { annotations: synthPaths.vcrAnnotations(root, subtype) } }),
};
