/** SynthScenes: the embedded default benchmark (README.md in this folder). */
export {
  generateSynthScenes,
  synthSplitSizes,
  SYNTH_DEFAULT_SIZE,
  SYNTH_HELD_OUT_FRACTION,
  SYNTH_MAX_IMAGES,
  SYNTH_MAX_SIZE,
  SYNTH_MIN_IMAGES,
  SYNTH_MIN_SIZE,
  type SynthOptions,
} from './generate.ts';
export { readSynthManifest, synthManifestSchema, SYNTH_GENERATOR_VERSION, type SynthManifest, type SynthSplitCounts } from './manifest.ts';
export {
  SYNTH_COLORS,
  SYNTH_RELATIONS,
  SYNTH_SHAPES,
  SYNTH_SIZES,
  type GqaSceneGraph,
  type SynthColor,
  type SynthRelation,
  type SynthShape,
  type SynthSize,
} from './scene.ts';
export * from './layout.ts';
export { VQA_FAMILY_OF_QUESTION_TYPE, type VqaFamily } from './vqa.ts';
