/**
 * Writes test/fixtures/vcr-release: a few VCR records in the release's two-folder layout
 * (vcr1annots/{train,val,test}.jsonl beside vcr1images/<movie>/<frame>.{jpg,json}), with every
 * field of the real records, detection tags such as [0, 2], and metadata with boxes, segms
 * (polygons of [x, y] points, one list per object), names, width and height.
 *
 *   npx tsx scripts/make-vcr-release-fixture.ts [out folder]
 *
 * The tests read what this committed; they never run it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

const out = process.argv[2] ?? join(import.meta.dirname, '..', 'test', 'fixtures', 'vcr-release');

interface Frame {
  movie: string;
  frame: string;
  objects: string[];
  boxes: number[][];
  width: number;
  height: number;
  colour: { r: number; g: number; b: number };
}

const frames: Frame[] = [
  { movie: '1054_Harry_Potter_and_the_prisoner_of_azkaban', frame: '00.46.26.887-00.46.30.025@0', objects: ['person', 'person', 'dog'], boxes: [[4, 2, 30, 34, 0.998], [32, 4, 58, 35, 0.991], [40, 20, 63, 35, 0.87]], width: 64, height: 36, colour: { r: 200, g: 60, b: 40 } },
  { movie: '1054_Harry_Potter_and_the_prisoner_of_azkaban', frame: '00.46.26.887-00.46.30.025@1', objects: ['person', 'chair'], boxes: [[10, 3, 40, 35, 0.995], [42, 12, 62, 35, 0.93]], width: 64, height: 36, colour: { r: 40, g: 160, b: 70 } },
  { movie: '3015_CHARLIE_ST_CLOUD', frame: '00.23.57.935-00.24.00.783@0', objects: ['person', 'person', 'person', 'car'], boxes: [[1, 1, 16, 35, 0.99], [17, 2, 32, 35, 0.98], [33, 1, 47, 35, 0.97], [48, 10, 63, 30, 0.9]], width: 64, height: 36, colour: { r: 30, g: 60, b: 210 } },
  { movie: '3015_CHARLIE_ST_CLOUD', frame: '00.24.13.102-00.24.16.001@3', objects: ['person', 'cup'], boxes: [[5, 5, 35, 35, 0.97], [40, 20, 50, 30, 0.81]], width: 64, height: 36, colour: { r: 220, g: 200, b: 40 } },
  { movie: '0001_American_Beauty', frame: '00.01.02.003-00.01.05.004@0', objects: ['person', 'person'], boxes: [[2, 2, 30, 34, 0.99], [34, 2, 62, 34, 0.99]], width: 64, height: 36, colour: { r: 120, g: 120, b: 120 } },
];

/** A rectangle outline per box: the release stores each object's mask as polygons of [x, y] points. */
function segms(boxes: number[][]): number[][][][] {
  return boxes.map(([x1, y1, x2, y2]) => [[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]]);
}

type Token = string | number[];
interface Item {
  frame: number;
  question: Token[];
  answers: Token[][];
  rationales: Token[][];
  answerLabel?: number;
  rationaleLabel?: number;
}

const splits: Record<'train' | 'val' | 'test', Item[]> = {
  train: [
    { frame: 0, question: ['Why', 'is', [0], 'looking', 'at', [1], '?'], answers: [[[0], 'is', 'surprised', 'by', [1], '.'], [[0], 'is', 'asleep', '.'], ['The', [2], 'is', 'barking', '.'], [[1], 'is', 'singing', '.']], rationales: [[[1], 'just', 'said', 'something', 'unexpected', '.'], ['It', 'is', 'night', '.'], [[2], 'is', 'eating', '.'], [[0, 1], 'are', 'in', 'a', 'car', '.']], answerLabel: 0, rationaleLabel: 0 },
    { frame: 0, question: ['What', 'will', [0, 1], 'do', 'next', '?'], answers: [['They', 'will', 'walk', 'the', [2], '.'], ['They', 'will', 'sleep', '.'], ['They', 'will', 'swim', '.'], ['They', 'will', 'cook', '.']], rationales: [['The', [2], 'is', 'on', 'a', 'leash', '.'], ['It', 'is', 'raining', '.'], ['There', 'is', 'a', 'pool', '.'], ['They', 'are', 'hungry', '.']], answerLabel: 0, rationaleLabel: 0 },
    { frame: 1, question: ['Is', [0], 'tired', '?'], answers: [['No', ',', [0], 'is', 'alert', '.'], ['Yes', ',', [0], 'is', 'yawning', '.'], [[0], 'is', 'angry', '.'], [[0], 'is', 'running', '.']], rationales: [[[0], "'s", 'eyes', 'are', 'wide', 'open', '.'], [[1], 'is', 'empty', '.'], ['It', 'is', 'noon', '.'], [[0], 'holds', 'a', 'cup', '.']], answerLabel: 1, rationaleLabel: 0 },
    { frame: 1, question: ['Why', 'is', [0], 'standing', 'next', 'to', 'the', [1], '?'], answers: [[[0], 'is', 'about', 'to', 'sit', 'down', '.'], [[0], 'is', 'painting', 'it', '.'], [[0], 'is', 'lost', '.'], [[0], 'is', 'dancing', '.']], rationales: [['The', [1], 'is', 'pulled', 'out', '.'], [[0], 'holds', 'a', 'brush', '.'], [[0], 'looks', 'around', '.'], ['Music', 'is', 'playing', '.']], answerLabel: 0, rationaleLabel: 3 },
  ],
  val: [
    { frame: 2, question: ['Does', [2], 'feel', 'comfortable', '?'], answers: [['Yes', 'because', [0, 1], 'are', 'smiling', '.'], ['No', 'she', 'does', 'not', '.'], ['Yes', ',', 'she', 'is', 'near', 'the', [3], '.'], [[0], "'s", 'hand', 'is', 'cold', '.']], rationales: [['There', 'is', 'snow', '.'], ['She', 'is', 'standing', 'with', 'her', 'arms', 'crossed', '.'], [[0, 1, 2], 'do', "n't", 'look', 'happy', '.'], [[2], 'is', 'laying', 'in', 'bed', '.']], answerLabel: 1, rationaleLabel: 1 },
    { frame: 2, question: ['Where', 'are', [0, 2], 'going', '?'], answers: [['To', 'the', [3], '.'], ['To', 'school', '.'], ['Home', '.'], ['To', 'a', 'party', '.']], rationales: [[[0], 'holds', 'the', 'keys', 'of', 'the', [3], '.'], ['They', 'carry', 'books', '.'], ['It', 'is', 'late', '.'], ['They', 'are', 'dressed', 'up', '.']], answerLabel: 0, rationaleLabel: 0 },
    { frame: 3, question: ['What', 'is', 'in', 'the', [1], '?'], answers: [['Coffee', '.'], ['Soup', '.'], ['Nothing', '.'], ['Paint', '.']], rationales: [['Steam', 'rises', 'from', 'the', [1], '.'], [[0], 'holds', 'a', 'spoon', '.'], ['The', [1], 'is', 'upside', 'down', '.'], [[0], 'is', 'an', 'artist', '.']], answerLabel: 0, rationaleLabel: 0 },
    { frame: 3, question: ['How', 'does', [0], 'feel', '?'], answers: [[[0], 'is', 'sleepy', '.'], [[0], 'is', 'excited', '.'], [[0], 'is', 'scared', '.'], [[0], 'is', 'bored', '.']], rationales: [[[0], 'is', 'drinking', 'coffee', 'to', 'stay', 'awake', '.'], [[0], 'is', 'jumping', '.'], [[0], 'is', 'hiding', '.'], [[0], 'yawns', '.']], answerLabel: 3, rationaleLabel: 2 },
  ],
  test: [
    { frame: 4, question: ['Are', [0, 1], 'friends', '?'], answers: [['Yes', ',', 'they', 'are', 'laughing', '.'], ['No', ',', 'they', 'are', 'fighting', '.'], ['They', 'are', 'strangers', '.'], ['They', 'are', 'siblings', '.']], rationales: [[[0], 'has', 'a', 'hand', 'on', [1], "'s", 'shoulder', '.'], [[1], 'is', 'shouting', '.'], ['They', 'avoid', 'each', 'other', '.'], ['They', 'look', 'alike', '.']] },
    { frame: 4, question: ['What', 'is', [1], 'holding', '?'], answers: [['A', 'phone', '.'], ['A', 'book', '.'], ['A', 'cup', '.'], ['Nothing', '.']], rationales: [[[1], 'is', 'typing', '.'], [[1], 'turns', 'a', 'page', '.'], [[1], 'sips', '.'], [[1], "'s", 'hands', 'are', 'empty', '.']] },
  ],
};

/** Joins words and tags as the *_orig fields do: tags as the 1-based indexes a worker saw. */
function original(tokens: Token[]): string {
  return tokens.map((token) => (typeof token === 'string' ? token : token.map((i) => String(i + 1)).join(' and '))).join(' ');
}

for (const frame of frames) {
  const base = join(out, 'vcr1images', `lsmdc_${frame.movie}`, `${frame.movie}_${frame.frame}`);
  mkdirSync(dirname(base), { recursive: true });
  await sharp({ create: { width: frame.width, height: frame.height, channels: 3, background: frame.colour } }).jpeg({ quality: 90 }).toFile(`${base}.jpg`);
  writeFileSync(`${base}.json`, JSON.stringify({ boxes: frame.boxes, segms: segms(frame.boxes), names: frame.objects, width: frame.width, height: frame.height }));
}

mkdirSync(join(out, 'vcr1annots'), { recursive: true });
for (const [split, items] of Object.entries(splits)) {
  const questionNumbers = new Map<number, number>();
  const lines = items.map((item, n) => {
    const frame = frames[item.frame];
    const questionNumber = questionNumbers.get(item.frame) ?? 0;
    questionNumbers.set(item.frame, questionNumber + 1);
    const name = `lsmdc_${frame.movie}/${frame.movie}_${frame.frame}`;
    return JSON.stringify({
      movie: frame.movie,
      objects: frame.objects,
      interesting_scores: [0],
      answer_likelihood: 'likely',
      img_fn: `${name}.jpg`,
      metadata_fn: `${name}.json`,
      answer_orig: original(item.answers[item.answerLabel ?? 0]),
      question_orig: original(item.question),
      rationale_orig: original(item.rationales[item.rationaleLabel ?? 0]),
      question: item.question,
      answer_match_iter: [3, 0, 2, 1],
      answer_sources: [10463, 0, 24451, 6178],
      answer_choices: item.answers,
      ...(item.answerLabel === undefined ? {} : { answer_label: item.answerLabel }),
      rationale_choices: item.rationales,
      rationale_sources: [26162, 0, 12237, 18012],
      rationale_match_iter: [1, 0, 3, 2],
      ...(item.rationaleLabel === undefined ? {} : { rationale_label: item.rationaleLabel }),
      img_id: `${split}-${item.frame}`,
      question_number: questionNumber,
      annot_id: `${split}-${n}`,
      match_fold: `${split}-${n % 2}`,
      match_index: n,
    });
  });
  writeFileSync(join(out, 'vcr1annots', `${split}.jsonl`), lines.join('\n') + '\n');
}
console.log(`wrote ${out}`);
