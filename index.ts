// The public API of vlbench: what a user imports from code. The CLI is a thin layer over these.
export { selectBackend, parseBackendChoice, describeBackend, type BackendChoice, type SelectedBackend } from './models/backends/select.ts';
export { InputError, type InputLocation } from './core/errors.ts';
export { SeededRandom } from './core/random.ts';
export {
  OPENAI_CLIP_PREPROCESSING,
  preprocessImage,
  preprocessedBatches,
  readPreprocessorConfig,
  toPreprocessorConfig,
  type ImagePreprocessing,
  type PixelBatch,
} from './models/image-pipeline.ts';
export { softwareVersions, describeMachine, gitCommit, type SoftwareVersions } from './core/environment.ts';
export type { Task, LoadedSplit, LoadOptions, ScoreOptions, ScoreReport, ExampleScore, BackendName, SynthScenesPlace } from './core/types.ts';
export { main as runCli, score, type ScoreRequest } from './cli/program.ts';

// Tasks: loaders, official metrics and submission writers.
export { getTask, knownTaskNames, listTasks } from './tasks/registry.ts';
export { vqaTask, normalizeVqaAnswer, vqaQuestionAccuracy, vqaSoftScore, buildAnswerVocabulary, loadVqaSplit, scoreVqa, type VqaExample } from './tasks/vqa/index.ts';
export { gqaTask, loadGqaSplit, scoreGqa, type GqaExample } from './tasks/gqa/index.ts';
export { vcrTask, loadVcrSplit, scoreVcr, readVcrLeaderboardCsv, writeVcrLeaderboardCsv, renderVcrTokens, type VcrExample } from './tasks/vcr/index.ts';
export { retrievalTask, loadKarpathySplit, scoreRetrieval, readNpyMatrix, writeNpyMatrix, type RetrievalImage, type RetrievalScores } from './tasks/retrieval/index.ts';
export { vizwizTask, loadVizwizSplit, scoreVizwiz, type VizwizExample } from './tasks/vizwiz/index.ts';
// The VQA-like building block: result files keyed by any id, VQA accuracy per answer type.
export { readAnswerResults, checkAnswerResults, writeAnswerResults, type ResultKey } from './tasks/vqa-like/results.ts';
export { scoreVqaLike, type VqaLikeScoring } from './tasks/vqa-like/score.ts';
export { generateSynthScenes, readSynthManifest, synthPaths, type SynthManifest, type SynthOptions } from './tasks/synth/index.ts';

// Models: the aligned encoder (tfjs CLIP in the Hugging Face layout, ONNX), safetensors, training.
export { fingerprintModelFolder, type AlignedEncoder, type HostTensor } from './models/encoders/aligned-encoder.ts';
export { loadEncoder, type LoadEncoderOptions } from './models/encoders/load-encoder.ts';
export { ClipModel, type FreezePolicy } from './models/encoders/clip.ts';
export { TfjsClipEncoder } from './models/encoders/clip-encoder.ts';
export { readSafetensors, writeSafetensors } from './models/encoders/safetensors.ts';
export { train, AdamW, learningRateAt, type TrainingProblem, type TrainingSettings, type TrainingResult } from './models/train.ts';
export { OBJECTIVES, parseMethodSpec, type MethodSpec, type Objective, type ObjectiveModule, type ObjectiveBatch, type LossTerm } from './models/objectives/index.ts';
export { defineObjective } from './models/objectives/objective.ts';

// Leaderboard: run records, the store, statistics and the regression gate.
export { openLeaderboard, withLeaderboard, recordRun, listRuns, findRun, exampleScores, recordedRunIds, DEFAULT_LEADERBOARD_PATH, RunAlreadyRecordedError, StoreUnreachableError, type LeaderboardStore } from './leaderboard/store.ts';
export { parseRunRecord, comparabilityKey, recordedScoring, type RunRecord, type RunRecordDraft, type RunExecution, type RunScoring } from './leaderboard/run-record.ts';
export { compareRuns, compareSeedGroups, formatComparison, type Comparison, type CompareOptions, type ComparedRun, type ComparedGroup } from './leaderboard/compare.ts';
export { resolveComparedGroup } from './leaderboard/compared-groups.ts';
export { bootstrapInterval, pairedBootstrap, seedGroupDifference, seedGroupInterval } from './leaderboard/statistics.ts';

// Contrastive pretraining and the bundled SynthScenes CLIP.
export { bundledModelDir } from './models/encoders/bundled.ts';
export { pretrainClip, pretrainClipConfig, contrastivePretrainingProblem, loadPretrainingPairs } from './models/pretrain.ts';
export { runPretrain, type PretrainOptions } from './harness/pretrain-run.ts';
export { wordLevelVocabulary, writeWordLevelTokenizer } from './models/encoders/word-level-tokenizer.ts';
export { extendWordLevelVocabulary } from './models/encoders/vocabulary-extension.ts';

// Runs: fine-tuning and scoring end to end, and the demo.
export { executeRun, type RunRequest, type RunOutcome } from './harness/run.ts';
export { ADAPTERS, getAdapter, type TaskAdapter, type AdapterContext, type PreparedModel } from './harness/adapters/index.ts';
export { answerClassificationAdapter, softAnswerTargets, exactAnswerTargets, countedAnswerVocabulary, type AnswerTask } from './harness/adapters/answer-classification.ts';
export { runEncode, type EncodeOptions, type EncodeResult } from './harness/encode-run.ts';
export { runDemo } from './harness/demo.ts';
export { runPool, defaultConcurrency, type PoolJob, type RunSummary } from './harness/run-pool.ts';
