// Stage 3 of the bundled model's recipe (models/bundled/synthscenes-clip/README.md): gives the
// words of SynthScenes questions, answers and rationales their own token ids and embedding
// rows, so the frozen text encoder tells questions apart. Pretrained weights are unchanged.
// Usage: npx tsx scripts/extend-bundled-vocabulary.ts SYNTH_DIR [MODEL_DIR]
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { extendWordLevelVocabulary } from '../models/encoders/vocabulary-extension.ts';
import { SeededRandom } from '../core/random.ts';
import { synthTrainingTexts } from '../tasks/synth/training-texts.ts';

const [data, model = bundledModelDir()] = process.argv.slice(2);
if (!data) throw new Error('usage: npx tsx scripts/extend-bundled-vocabulary.ts SYNTH_DIR [MODEL_DIR]');
const { added } = await extendWordLevelVocabulary(model, model, await synthTrainingTexts(data), new SeededRandom(0).fork('vocabulary-extension'));
console.log(`added ${added.length} words to ${model}: ${added.join(' ')}`);
