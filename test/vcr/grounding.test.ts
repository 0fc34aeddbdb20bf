import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { SeededRandom } from '../../core/random.ts';
import { ChoiceRowBuilder, choiceTexts, detectionsInCrop, groundText, predictionItems, trainingItems } from '../../harness/adapters/vcr.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';
import { FeatureTable } from '../../models/features.ts';
import { FusionTraining } from '../../models/fine-tuning/fusion-training.ts';
import { boxSineFeatures, FusionTransformer } from '../../models/heads/fusion.ts';
import type { ImagePreprocessing } from '../../models/image-pipeline.ts';
import { parseMethodSpec } from '../../models/objectives/index.ts';
import { segmentPatchIndices } from '../../models/ops/regions.ts';
import { renderVcrTokens, type VcrToken } from '../../tasks/vcr/tags.ts';
import { vcrTask, type VcrExample } from '../../tasks/vcr/index.ts';

/**
 * R2C grounding: each tag word's tokens are found in the encoded text and linked to its
 * detection's box, whatever the tokenizer does to the word and whichever boxes the crop drops;
 * the fusion then adds that detection to exactly those tokens. The same path reads a VCR file
 * in the release format (boxes and segms from the metadata json, multi-object tags).
 */

/** Like CLIP's BPE in the way that matters here: words split at spaces and punctuation, then into pieces (3 letters each). */
function subwordTokenIds(text: string): number[] {
  const pieces = (text.toLowerCase().match(/\w+|[^\w\s]+/g) ?? []).flatMap((word) => word.match(/.{1,3}/g)!);
  return [1000, ...pieces.map((piece) => [...piece].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 997, 7)), 1001];
}

const prep: ImagePreprocessing = { doResize: true, resizeShortestEdge: 96, doCenterCrop: true, cropHeight: 96, cropWidth: 96, doRescale: true, rescaleFactor: 1 / 255, doNormalize: false, mean: [0, 0, 0], std: [1, 1, 1] };

test('every token of a tag word is linked to its object, the choice span covers the choice, and truncation cuts both at the end token', (t) => {
  const objects = ['person', 'traffic light'];
  const question = renderVcrTokens(['Why', 'is', [0], 'near', [1], '?'], objects);
  const answer = renderVcrTokens([[1], 'is', 'red', '.'], objects);
  t.is(`${question.text} ${answer.text}`, 'Why is Casey near traffic light? traffic light is red.');
  // <s> why is cas·ey nea·r tra·ffi·c lig·ht ? | tra·ffi·c lig·ht is red . </s>
  //  0   1   2  3   4  5   6  7   8   9 10  11 12   13  14 15 16  17 18  19  20  21
  const full = groundText([question, answer], subwordTokenIds, 22);
  t.deepEqual(
    { choice: full.choice, tags: full.tags },
    {
      choice: { start: 13, end: 21 },
      tags: [
        { start: 3, end: 5, object: 0 },
        { start: 7, end: 12, object: 1 },
        { start: 13, end: 18, object: 1 },
      ],
    },
  );
  // The tags around each token, within its own part: "is red ." after the answer's tag take object 1,
  // a tag's own pieces take the tags around the word (Casey's next is the traffic light), and the
  // question's tags are no context for the answer's tokens.
  const perToken = (spans: { start: number; end: number; object: number }[]) => spans.map((span) => (t.is(span.end, span.start + 1), [span.start, span.object]));
  t.deepEqual(perToken(full.context.previous), [[5, 0], [6, 0], [7, 0], [8, 0], [9, 0], [10, 0], [11, 0], [12, 1], [18, 1], [19, 1], [20, 1]]);
  t.deepEqual(perToken(full.context.next), [[1, 0], [2, 0], [3, 1], [4, 1], [5, 1], [6, 1]]);
  // Truncated to 16 tokens, the end token at 15: the answer's tag keeps its first two pieces.
  const truncated = groundText([question, answer], subwordTokenIds, 16);
  t.deepEqual(
    { choice: truncated.choice, tags: truncated.tags },
    {
      choice: { start: 13, end: 15 },
      tags: [
        { start: 3, end: 5, object: 0 },
        { start: 7, end: 12, object: 1 },
        { start: 13, end: 15, object: 1 },
      ],
    },
  );
  t.deepEqual(perToken(truncated.context.previous).filter(([token]) => token >= 13), []);
});

/** A text table for `texts` that knows only lengths and the tokenizer (what the row builder reads). */
function textTable(texts: string[], tokenIds: (text: string) => number[]): FeatureTable {
  const lengths = texts.map((text) => tokenIds(text).length);
  const longest = Math.max(...lengths);
  const masks = new Float32Array(texts.length * longest);
  lengths.forEach((length, row) => masks.fill(1, row * longest, row * longest + length));
  return Object.assign(new FeatureTable(longest, 2, 2, new Float32Array(texts.length * longest * 2), new Float32Array(texts.length * 2), texts, masks), { textTokenIds: tokenIds });
}

function example(tokens: { question: VcrToken[]; answers: VcrToken[][]; rationales: VcrToken[][] }, objects: string[], boxes: VcrExample['boxes'], width: number, height: number): VcrExample {
  return {
    id: 'val-0', imageId: 'val-0', movie: 'm', questionNumber: 0, imagePath: '/images/a.jpg', metadataPath: '/images/a.json', imageWidth: width, imageHeight: height,
    objects, boxes,
    question: renderVcrTokens(tokens.question, objects),
    answers: tokens.answers.map((a) => renderVcrTokens(a, objects)),
    rationales: tokens.rationales.map((r) => renderVcrTokens(r, objects)),
    answerLabel: 0, rationaleLabel: 0,
  };
}

/** Two people and a dog on a 200×100 image; the question names the first person and the dog. */
const twoPeopleAndADog = () =>
  example(
    { question: ['Is', [0], 'left', 'of', [2], '?'], answers: [[[1], 'is', '.'], [[2], 'is', '.'], ['No', '.'], [[1, 2], 'are', '.']], rationales: [['A', '.'], ['B', '.'], ['C', '.'], ['D', '.']] },
    ['person', 'person', 'dog'],
    [[0, 10, 40, 90, 0.9], [60, 10, 100, 90, 0.9], [110, 50, 140, 90, 0.8]],
    200,
    100,
  );

test('a detection outside the crop is dropped and the other tags still point at their own boxes, through to the fusion rows', (t) => {
  // 200×100, resized to 192×96 and center-cropped to x ∈ [48, 144) of the resized image: x ∈ [50, 150) here.
  const vcr = twoPeopleAndADog();
  const detections = detectionsInCrop(vcr, prep);
  t.deepEqual(detections.boxOfObject, [-1, 0, 1]);
  t.is(detections.boxes.length, 2);
  t.deepEqual(detections.boxes[0].map((v) => Math.round(v * 1000) / 1000), [0.1, 0.1, 0.5, 0.9]);

  const items = trainingItems([vcr]).slice(0, 1);
  const texts = textTable(items.flatMap(choiceTexts), subwordTokenIds);
  const rows = new ChoiceRowBuilder(texts, prep).rows(items);
  // <s> is cas·ey lef·t of dog ? | ril·ey and dog are . </s>   (answer 3; answer 0 is "Riley is.")
  //  0   1  2   3  4   5  6  7   8   9  10  11  12  13 14  15
  // Casey (object 0) is outside the crop and keeps no box; Riley (1) is box 0, the dog (2) box 1.
  const questionTags = [{ start: 7, end: 8, box: 1 }];
  t.deepEqual(rows.tags![0], [...questionTags, { start: 9, end: 11, box: 0 }]);
  t.deepEqual(rows.tags![3], [...questionTags, { start: 9, end: 11, box: 0 }, { start: 12, end: 13, box: 1 }]);
  t.deepEqual(rows.focus![3], { start: 9, end: 15 });
  // The four rows share their first 9 tokens, <s> and the question: the fusion runs those once.
  t.deepEqual(rows.choiceGroups, { rows: 4, prefixLengths: [9] });
  t.true(rows.boxes!.every((boxes) => JSON.stringify(boxes) === JSON.stringify(detections.boxes)));

  // The fusion rows carry the links as a [rows, tokens, boxes] matrix: both pieces of "Riley" → box 0.
  const images = new FeatureTable(5, 3, 2, new Float32Array(5 * 3), new Float32Array(2), ['/images/a.jpg']);
  const fusion = new FusionTransformer({ imageDim: 3, textDim: 2, hidden: 4, layers: 0, heads: 1, detectionSlots: 4 }, new SeededRandom(1));
  const training = new FusionTraining({ method: parseMethodSpec('ft', {}), images, texts, fusion, targetImageKeys: [], random: new SeededRandom(2) });
  const tensors = training.rowTensors(rows);
  const links = tensors.tagRegions!.arraySync();
  const linked = (row: number, box: number) => links[row].flatMap((perToken, token) => (perToken[box] === 1 ? [token] : []));
  t.deepEqual(linked(3, 0), [9, 10]);
  t.deepEqual(linked(3, 1), [7, 12]);
  t.deepEqual(linked(2, 0), []);
  tf.dispose(Object.values(tensors).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
  fusion.dispose();

  // Neighbouring tags follow the same box filtering: in "Riley and dog are." (answer 3), "and" has
  // Riley (box 0) before it and the dog (box 1) after; the question's "left of" comes after Casey,
  // whose box the crop dropped, so it has no previous tag, only the dog as next.
  const withContext = new ChoiceRowBuilder(texts, prep, true).rows(items);
  t.is(rows.tagContext, undefined);
  const previous = withContext.tagContext!.previous[3];
  const next = withContext.tagContext!.next[3];
  t.deepEqual(previous.filter((tag) => tag.start === 11), [{ start: 11, end: 12, box: 0 }]);
  t.deepEqual(next.filter((tag) => tag.start === 11), [{ start: 11, end: 12, box: 1 }]);
  t.deepEqual(previous.filter((tag) => tag.start >= 4 && tag.start < 7), []);
  t.deepEqual(next.filter((tag) => tag.start >= 4 && tag.start < 7), [4, 5, 6].map((token) => ({ start: token, end: token + 1, box: 1 })));
  const contextFusion = new FusionTransformer({ imageDim: 3, textDim: 2, hidden: 4, layers: 0, heads: 1, detectionSlots: 4, tagContext: true }, new SeededRandom(1));
  const contextTraining = new FusionTraining({ method: parseMethodSpec('ft', {}), images, texts, fusion: contextFusion, targetImageKeys: [], random: new SeededRandom(2) });
  const contextTensors = contextTraining.rowTensors(withContext);
  t.deepEqual(contextTensors.tagContext!.previous.arraySync()[3][11], [1, 0]);
  t.deepEqual(contextTensors.tagContext!.next.arraySync()[3][11], [0, 1]);
  tf.dispose([...Object.values(contextTensors).filter((v): v is tf.Tensor => v instanceof tf.Tensor), contextTensors.tagContext!.previous, contextTensors.tagContext!.next]);
  contextFusion.dispose();
});

test('the rows of a Q→A item share the question, those of a QA→R item the question and the given answer', (t) => {
  const vcr = twoPeopleAndADog();
  const items = trainingItems([vcr]);
  const rows = new ChoiceRowBuilder(textTable(items.flatMap(choiceTexts), subwordTokenIds), prep, true).rows(items);
  // <s> is cas·ey lef·t of dog ? (9 tokens), then the gold answer 0 "ril·ey is ." (4 more) before each rationale.
  t.deepEqual(rows.choiceGroups, { rows: 4, prefixLengths: [9, 13] });
  t.deepEqual(rows.focus!.slice(4).map((span) => span.start), [13, 13, 13, 13]);
});

test('tag context and tag products are opt-in: without them the fusion has the same parameters and values; with them, words after a tag change with its region', (t) => {
  const names = (config: { tagContext?: boolean; tagProduct?: boolean; boxSine?: boolean; detectionSlots?: number; layers?: number }) => new FusionTransformer({ imageDim: 3, textDim: 2, hidden: 4, layers: 1, heads: 1, ...config }, new SeededRandom(3));
  const plain = names({ detectionSlots: 2 });
  const withContext = names({ detectionSlots: 2, tagContext: true });
  const withoutSlots = names({ tagContext: true });
  const plainNames = [...plain.namedVariables().keys()];
  // Every parameter of the fusion without tag context exists with it, with the same initial values.
  for (const [name, variable] of plain.namedVariables()) t.deepEqual(withContext.namedVariables().get(name)!.arraySync(), variable.arraySync(), name);
  t.true(withContext.namedVariables().size > plainNames.length);
  const withProducts = names({ detectionSlots: 2, tagContext: true, tagProduct: true });
  for (const [name, variable] of withContext.namedVariables()) t.deepEqual(withProducts.namedVariables().get(name)!.arraySync(), variable.arraySync(), name);
  t.true(withProducts.namedVariables().size > withContext.namedVariables().size);
  const withSine = names({ detectionSlots: 2, tagContext: true, tagProduct: true, boxSine: true });
  for (const [name, variable] of withProducts.namedVariables()) t.deepEqual(withSine.namedVariables().get(name)!.arraySync(), variable.arraySync(), name);
  t.true(withSine.namedVariables().size > withProducts.namedVariables().size);
  withSine.dispose();
  // Tag context needs the grounding it extends: without detection slots it builds nothing.
  t.deepEqual([...withoutSlots.namedVariables().keys()], [...names({}).namedVariables().keys()]);
  // No layers, so a token changes only through what is added to it.
  const layerFree = { plain: names({ detectionSlots: 2, layers: 0 }), withContext: names({ detectionSlots: 2, tagContext: true, layers: 0 }), withProducts: names({ detectionSlots: 2, tagContext: true, tagProduct: true, layers: 0 }) };
  const run = (fusion: FusionTransformer, regionFeatures: number[][]) =>
    tf.tidy(() => {
      const out = fusion.apply({
        imageTokens: tf.zeros([1, 2, 3]) as tf.Tensor3D,
        textTokens: tf.ones([1, 3, 2]) as tf.Tensor3D,
        textMask: tf.ones([1, 3]) as tf.Tensor2D,
        regions: { tokens: tf.tensor3d([regionFeatures]), mask: tf.ones([1, 2]) as tf.Tensor2D, geometry: tf.tensor3d([[[0, 0, 0.5, 0.5, 0.5, 0.5, 0.25], [0.5, 0.5, 1, 1, 0.5, 0.5, 0.25]]]) },
        // Token 0 names detection 0; token 1 is a word after it ("[0] is red"); token 2 has no tag around it.
        tagRegions: tf.tensor3d([[[1, 0], [0, 0], [0, 0]]]),
        tagContext: { previous: tf.tensor3d([[[0, 0], [1, 0], [0, 0]]]), next: tf.zeros([1, 3, 2]) as tf.Tensor3D },
      });
      return out.sequence.arraySync()[0].slice(4);
    });
  const changed = (fusion: FusionTransformer) => {
    const before = run(fusion, [[1, 0, 0], [0, 1, 0]]);
    const after = run(fusion, [[5, 0, 0], [0, 1, 0]]);
    return before.map((token, i) => JSON.stringify(token) !== JSON.stringify(after[i]));
  };
  t.deepEqual(changed(layerFree.plain), [true, false, false]);
  t.deepEqual(changed(layerFree.withContext), [true, true, false]);
  t.deepEqual(changed(layerFree.withProducts), [true, true, false]);
  for (const fusion of [plain, withContext, withProducts, withoutSlots, ...Object.values(layerFree)]) fusion.dispose();
});

test('sine box features: sin and cos of π·k·v for the centre x, centre y, width and height of each box', (t) => {
  // Box [0.25, 0.5, 0.75, 1]: centre (0.5, 0.75), size 0.5 × 0.5.
  const features = boxSineFeatures(tf.tensor3d([[[0.25, 0.5, 0.75, 1, 0.5, 0.5, 0.25]]])).arraySync()[0][0];
  t.is(features.length, 32);
  const expected = [0.5, 0.75, 0.5, 0.5].flatMap((v) => [...[1, 2, 3, 4].map((k) => Math.sin(Math.PI * k * v)), ...[1, 2, 3, 4].map((k) => Math.cos(Math.PI * k * v))]);
  features.forEach((value, i) => t.true(Math.abs(value - expected[i]) < 1e-5, `feature ${i}: ${value} against ${expected[i]}`));
});

test("one text naming different objects in two images is grounded in each image's own box", (t) => {
  // "What color is square? square is red." names object 0 in the first scene and object 1 in the
  // second; the row builder caches groundings, and a cache keyed by the text alone gave the second
  // image the first one's box (most SynthScenes colour items were grounded in the wrong region).
  const tokens = (object: number) => ({ question: ['What', 'color', 'is', [object], '?'] as VcrToken[], answers: ['red', 'blue', 'green', 'gray'].map((c): VcrToken[] => [[object], 'is', c, '.']), rationales: [['A', '.'], ['B', '.'], ['C', '.'], ['D', '.']] as VcrToken[][] });
  const first = example(tokens(0), ['square', 'circle'], [[60, 10, 100, 50, 1], [110, 50, 140, 90, 1]], 200, 100);
  const second = example(tokens(1), ['circle', 'square'], [[60, 10, 100, 50, 1], [110, 50, 140, 90, 1]], 200, 100);
  const items = trainingItems([first, second]).filter((item) => item.mode === 'answer');
  t.deepEqual(choiceTexts(items[0]), choiceTexts(items[1]));
  const rows = new ChoiceRowBuilder(textTable([...new Set(items.flatMap(choiceTexts))], subwordTokenIds), prep, true).rows(items);
  const boxesNamed = (row: number) => [...new Set(rows.tags![row].map((tag) => tag.box))];
  t.deepEqual(boxesNamed(0), [0]);
  t.deepEqual(boxesNamed(4), [1]);
  t.deepEqual([...new Set(rows.tagContext!.previous[4].map((tag) => tag.box))], [1]);
});

test('the fusion adds a detection to its tag tokens only: changing a region changes the tokens that name it, not the others', (t) => {
  const fusion = new FusionTransformer({ imageDim: 3, textDim: 2, hidden: 4, layers: 0, heads: 1, detectionSlots: 2 }, new SeededRandom(3));
  const run = (regionFeatures: number[][]) =>
    tf.tidy(() => {
      const out = fusion.apply({
        imageTokens: tf.zeros([1, 2, 3]) as tf.Tensor3D,
        textTokens: tf.ones([1, 3, 2]) as tf.Tensor3D,
        textMask: tf.ones([1, 3]) as tf.Tensor2D,
        regions: { tokens: tf.tensor3d([regionFeatures]), mask: tf.ones([1, 2]) as tf.Tensor2D, geometry: tf.tensor3d([[[0, 0, 0.5, 0.5, 0.5, 0.5, 0.25], [0.5, 0.5, 1, 1, 0.5, 0.5, 0.25]]]) },
        // Token 1 names detection 0; token 2 names detection 1; token 0 names none.
        tagRegions: tf.tensor3d([[[0, 0], [1, 0], [0, 1]]]),
      });
      return out.sequence.arraySync()[0].slice(4);
    });
  const before = run([[1, 0, 0], [0, 1, 0]]);
  const after = run([[1, 0, 0], [0, 0, 5]]);
  t.deepEqual(after[0], before[0]);
  t.deepEqual(after[1], before[1]);
  t.notDeepEqual(after[2], before[2]);
  // Without grounding the three identical text tokens come out identical; with it, tagged ones differ.
  t.notDeepEqual(before[1], before[0]);
  fusion.dispose();
});

test('a polygon pools the patches whose centres it contains; one that contains none falls back to its box', (t) => {
  const grid = { rows: 4, cols: 4, offset: 1 };
  // Lower-left triangle of the image: centres (c+0.5)/4 with y > x.
  const triangle = [[0, 0], [0, 1], [1, 1]] as const;
  t.deepEqual(segmentPatchIndices(grid, [0, 0, 1, 1], [triangle]), [4, 8, 9, 12, 13, 14]);
  t.deepEqual(segmentPatchIndices(grid, [0.5, 0.5, 1, 1], [[[0.01, 0.01], [0.02, 0.01], [0.02, 0.02]]]), [10, 11, 14, 15]);
});

test('a release-format VCR file (segms, multi-object tags, person names) goes through the same rows', async (t) => {
  const release = join(import.meta.dirname, '..', 'fixtures', 'vcr-release');
  const split = await vcrTask.load({ split: 'train', dataDir: release });
  const first = split.examples[0] as VcrExample;
  t.deepEqual(first.objects, ['person', 'person', 'dog']);
  t.is(first.segms!.length, 3);
  const detections = detectionsInCrop(first, prep);
  // 64×36 resized to 171×96, crop x ∈ [37, 133) of it: all three boxes keep a part; each polygon is mapped the same way as its box.
  t.deepEqual(detections.boxOfObject, [0, 1, 2]);
  detections.polygons.forEach((polygons, box) => {
    const xs = polygons![0].map(([x]) => x);
    const ys = polygons![0].map(([, y]) => y);
    t.deepEqual([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)], [...detections.boxes[box]]);
  });

  const tokenizer = await ClipTokenizer.load(bundledModelDir(), 48);
  const tokenIds = (text: string) => tokenizer.encodeOne(text);
  const items = predictionItems(first);
  const texts = textTable(items.flatMap(choiceTexts), tokenIds);
  const rows = new ChoiceRowBuilder(texts, prep).rows(items);
  // Rationale 3 given answer 0: "Why is Casey looking at Riley? Casey is surprised by Riley. Casey and Riley are in a car."
  const row = 4 + 3;
  t.is(rows.textKeys[row], 'Why is Casey looking at Riley? Casey is surprised by Riley. Casey and Riley are in a car.');
  // The bundled tokenizer reads one token per word (names are <|unk|>, still one token each):
  // <s> why is casey looking at riley ? casey is surprised by riley . casey and riley are in a car . </s>
  //  0   1   2   3     4     5    6   7   8   9     10     11   12 13   14  15   16   17 18 19 20 21  22
  t.deepEqual(rows.tags![row], [
    { start: 3, end: 4, box: 0 },
    { start: 6, end: 7, box: 1 },
    { start: 8, end: 9, box: 0 },
    { start: 12, end: 13, box: 1 },
    { start: 14, end: 15, box: 0 },
    { start: 16, end: 17, box: 1 },
  ]);
  t.deepEqual(rows.focus![row], { start: 14, end: 22 });
  t.deepEqual(rows.polygons![row], detections.polygons);
});
