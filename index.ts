// The public API of vlbench: what a user imports from code. The CLI is a thin layer over these.
export { selectBackend, parseBackendChoice, describeBackend, type BackendChoice, type SelectedBackend } from './harness/backend.ts';
export { InputError, type InputLocation } from './harness/errors.ts';
export { SeededRandom } from './harness/random.ts';
export {
  OPENAI_CLIP_PREPROCESSING,
  preprocessImage,
  preprocessedBatches,
  readPreprocessorConfig,
  toPreprocessorConfig,
  type ImagePreprocessing,
  type PixelBatch,
} from './harness/images.ts';
export { softwareVersions, describeMachine, gitCommit, type SoftwareVersions } from './harness/environment.ts';
export type { Task, LoadedSplit, LoadOptions, ScoreOptions, ScoreReport, ExampleScore, BackendName } from './harness/types.ts';
export { main as runCli } from './harness/cli.ts';
