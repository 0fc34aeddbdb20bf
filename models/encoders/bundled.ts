import { packagePath } from '../../core/package-root.ts';

/**
 * The SynthScenes CLIP that ships with vlbench (models/bundled/synthscenes-clip): a model
 * folder in the Hugging Face layout, pretrained by `vlbench pretrain` with the recipe in its
 * README.md and vlbench-recipe.json. Commands use it when no --model is given, so the
 * embedded benchmark runs with no download.
 */
export function bundledModelDir(): string {
  return packagePath('models', 'bundled', 'synthscenes-clip');
}
