// Zero-shot image-text retrieval of a CLIP model folder on a SynthScenes test split, per domain:
// encode every test image and caption, rank by cosine similarity, score R@1/5/10 both ways and
// rsum with the retrieval task's official scorer (pessimistic ties).
//
//   npx tsx bench/zeroshot.ts --data tmp/synth-6667 [--model DIR (default: the bundled model)] [--split test] [--backend wasm]
import { resolve } from 'node:path';
import { parseBackendChoice } from '../models/backends/select.ts';
import { preprocessedBatches } from '../models/image-pipeline.ts';
import { type HostTensor } from '../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { loadKarpathySplit, retrievalCaptions, scoreRetrievalSplit } from '../tasks/retrieval/index.ts';
import { SYNTH_DOMAINS, readSynthManifest, synthPaths } from '../tasks/synth/index.ts';
import { parseBenchArguments } from './command-line.ts';

const { values, refuse } = parseBenchArguments('npx tsx bench/zeroshot.ts --data SYNTH_DIR [--model DIR] [--split test] [--backend wasm]', {
  data: { type: 'string' },
  model: { type: 'string' },
  split: { type: 'string', default: 'test' },
  backend: { type: 'string', default: 'auto' },
});

function normalizedRows(tensor: HostTensor): Float32Array[] {
  const [rows, dim] = tensor.shape;
  const out: Float32Array[] = [];
  for (let r = 0; r < rows; r++) {
    const row = tensor.data.slice(r * dim, (r + 1) * dim);
    const norm = Math.hypot(...row) || 1;
    for (let d = 0; d < dim; d++) row[d] /= norm;
    out.push(row);
  }
  return out;
}

const data = values.data ?? refuse('--data is required');
const modelDir = resolve(values.model ?? bundledModelDir());
const split = values.split;
const manifest = await readSynthManifest(data);
const encoder = await loadEncoder(modelDir, { backend: parseBackendChoice(values.backend) });
console.log(`model ${modelDir} (${encoder.engine}/${encoder.backend}, fingerprint ${encoder.fingerprint.slice(0, 12)})`);
console.log(`data ${resolve(data)} (SynthScenes ${manifest.generatorVersion}, seed ${manifest.seed}, ${manifest.options.images} images per domain), split ${split}`);
try {
  for (const domain of SYNTH_DOMAINS.filter((d) => manifest.counts[d])) {
    const started = performance.now();
    const loaded = await loadKarpathySplit({ split, files: { annotations: synthPaths.retrieval(data, domain) }, imagesDir: synthPaths.imagesRoot(data) });
    const images: Float32Array[] = [];
    for await (const batch of preprocessedBatches(loaded.examples.map((e) => e.path), encoder.preprocessing, { batchSize: 64 })) {
      images.push(...normalizedRows(await encoder.embedImages(batch.pixels, batch.shape)));
    }
    const captions = retrievalCaptions(loaded).map((c) => c.text);
    const texts: Float32Array[] = [];
    for (let start = 0; start < captions.length; start += 128) texts.push(...normalizedRows(await encoder.embedTexts(captions.slice(start, start + 128))));
    const similarities = new Float32Array(images.length * texts.length);
    images.forEach((image, row) => {
      texts.forEach((text, col) => {
        let dot = 0;
        for (let d = 0; d < image.length; d++) dot += image[d] * text[d];
        similarities[row * texts.length + col] = dot;
      });
    });
    const report = scoreRetrievalSplit(loaded, similarities);
    const m = report.metrics;
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${domain.padEnd(6)} ${images.length} images, ${texts.length} captions | i2t R@1 ${m.i2t_r1.toFixed(2)} R@5 ${m.i2t_r5.toFixed(2)} R@10 ${m.i2t_r10.toFixed(2)} | ` +
        `t2i R@1 ${m.t2i_r1.toFixed(2)} R@5 ${m.t2i_r5.toFixed(2)} R@10 ${m.t2i_r10.toFixed(2)} | rsum ${m.rsum.toFixed(2)} | ${seconds.toFixed(0)} s`,
    );
  }
} finally {
  await encoder.dispose();
}
