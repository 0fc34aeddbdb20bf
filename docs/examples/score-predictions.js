// Scripting vlbench from JavaScript (docs/api.md): generate a small SynthScenes benchmark,
// write predictions in VQA's official result format, score them with the official metric,
// and catch a bad input as a typed error. CI runs this file against the packed tarball
// (test/package/tarball.test.ts).
//
//   node score-predictions.js DATA_DIR
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSynthScenes, synthPaths, score, InputError } from 'vlbench';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: node score-predictions.js DATA_DIR');

// The same as `vlbench synth --out DATA_DIR --images 20 --domains source --size 64`.
await generateSynthScenes({ outDir: dataDir, images: 20, seed: 0, size: 64, domains: ['source'], force: true });

// A baseline that answers "yes" to every test question.
const questions = synthPaths.vqaQuestions(dataDir, 'test_source');
const annotations = synthPaths.vqaAnnotations(dataDir, 'test_source');
const predictionsFile = join(dataDir, 'yes-predictions.json');
/** @type {{ questions: { question_id: number }[] }} */
const { questions: asked } = JSON.parse(await readFile(questions, 'utf8'));
await writeFile(predictionsFile, JSON.stringify(asked.map((q) => ({ question_id: q.question_id, answer: 'yes' }))));

// The same as `vlbench score --task vqa --questions … --annotations … --predictions …`;
// report.official is what that command prints.
const report = await score({ task: 'vqa', questions, annotations, predictions: predictionsFile });
console.log(JSON.stringify({ questions: asked.length, official: report.official }));

// A bad input is an InputError that names the file (and, where it applies, the record and field).
try {
  await score({ task: 'vqa', questions, annotations, predictions: join(dataDir, 'missing.json') });
} catch (error) {
  if (!(error instanceof InputError)) throw error;
  console.log(JSON.stringify({ refused: error.location.file }));
}
