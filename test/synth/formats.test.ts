import test from 'ava';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  SYNTH_COLORS,
  SYNTH_DOMAINS,
  SYNTH_RELATIONS,
  SYNTH_SHAPES,
  SYNTH_SPLITS,
  type SynthManifest,
  generateSynthScenes,
  synthImageName,
  synthPaths,
  synthSubtype,
} from '../../tasks/synth/index.ts';

// One small benchmark for every check in this file: 15 images per domain at 64 px.
let root = '';
let manifest: SynthManifest;
const SIZE = 64;
const subtypes = SYNTH_DOMAINS.flatMap((domain) => SYNTH_SPLITS.map((split) => ({ domain, split, subtype: synthSubtype(split, domain) })));

test.before(async () => {
  root = join(await mkdtemp(join(tmpdir(), 'synth-formats-')), 'bench');
  manifest = await generateSynthScenes({ outDir: root, images: 15, seed: 11, size: SIZE });
});
test.after.always(async () => {
  if (root) await rm(join(root, '..'), { recursive: true, force: true });
});

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));

interface GraphObject {
  name: string;
  x: number;
  y: number;
  w: number;
  h: number;
  attributes: string[];
  relations: { name: string; object: string }[];
}
type SceneGraphs = Record<string, { width: number; height: number; objects: Record<string, GraphObject> }>;

const color = (o: GraphObject) => o.attributes.find((a) => (SYNTH_COLORS as readonly string[]).includes(a))!;
const size = (o: GraphObject) => o.attributes.find((a) => a === 'small' || a === 'large')!;
const plural = (shape: string) => `${shape}s`;

/** The objects a phrase like "large red circle" names; the phrase must name exactly one. */
function resolveReference(objects: GraphObject[], phrase: string): GraphObject[] {
  const words = phrase.split(' ');
  const shape = words[words.length - 1];
  return objects.filter((o) => (shape === 'object' || o.name === shape) && words.slice(0, -1).every((w) => o.attributes.includes(w)));
}

function only(objects: GraphObject[], phrase: string): GraphObject {
  const found = resolveReference(objects, phrase);
  if (found.length !== 1) throw new Error(`"${phrase}" names ${found.length} objects`);
  return found[0];
}

const leftOf = (a: GraphObject, b: GraphObject) => a.x + a.w <= b.x;
const above = (a: GraphObject, b: GraphObject) => a.y + a.h <= b.y;
const holds: Record<string, (a: GraphObject, b: GraphObject) => boolean> = {
  'to the left of': leftOf,
  'to the right of': (a, b) => leftOf(b, a),
  above,
  below: (a, b) => above(b, a),
};
const centre = (o: GraphObject) => [o.x + o.w / 2, o.y + o.h / 2];
const onSide: Record<string, (o: GraphObject, anchor: GraphObject) => boolean> = {
  'to the left of': (o, a) => centre(o)[0] < centre(a)[0],
  'to the right of': (o, a) => centre(o)[0] > centre(a)[0],
  above: (o, a) => centre(o)[1] < centre(a)[1],
  below: (o, a) => centre(o)[1] > centre(a)[1],
};

/** Recomputes a VQA answer from the scene graph alone, by question template. */
function expectedVqaAnswer(question: string, objects: GraphObject[]): string {
  let m: RegExpMatchArray | null;
  if ((m = question.match(/^Is there an? (\w+) (\w+)\?$/))) return objects.some((o) => color(o) === m![1] && o.name === m![2]) ? 'yes' : 'no';
  if ((m = question.match(/^How many (\w+) shapes are there\?$/))) return String(objects.filter((o) => color(o) === m![1]).length);
  if ((m = question.match(/^How many (\w+) are there\?$/))) return String(objects.filter((o) => plural(o.name) === m![1]).length);
  if ((m = question.match(/^What color is the (.+)\?$/))) return color(only(objects, m[1]));
  if ((m = question.match(/^What shape is the (.+)\?$/))) return only(objects, m[1]).name;
  if ((m = question.match(/^What size is the (.+)\?$/))) return size(only(objects, m[1]));
  if ((m = question.match(/^What is (to the left of|to the right of|above|below) the (.+)\?$/))) {
    const anchor = only(objects, m[2]);
    const side = objects.filter((o) => o !== anchor && onSide[m![1]](o, anchor));
    if (side.length !== 1 || !holds[m[1]](side[0], anchor)) throw new Error(`ambiguous: ${question}`);
    return side[0].name;
  }
  if ((m = question.match(/^Is the (.+) bigger than the (.+)\?$/))) {
    return size(only(objects, m[1])) === 'large' && size(only(objects, m[2])) === 'small' ? 'yes' : 'no';
  }
  if ((m = question.match(/^Is the (.+) (to the left of|to the right of|above|below) the (.+)\?$/))) {
    const [a, b] = [only(objects, m[1]), only(objects, m[3])];
    const opposite = { 'to the left of': 'to the right of', 'to the right of': 'to the left of', above: 'below', below: 'above' }[m[2]]!;
    if (holds[m[2]](a, b)) return 'yes';
    if (holds[opposite](a, b)) return 'no';
    throw new Error(`ambiguous: ${question}`);
  }
  throw new Error(`no template matches: ${question}`);
}

test('every file the manifest lists exists; every split is non-empty', (t) => {
  t.is(manifest.generator, 'synthscenes');
  for (const { domain, split } of subtypes) {
    t.true(manifest.counts[domain]![split].images >= 1);
    t.true(manifest.counts[domain]![split].vqaQuestions >= 1);
  }
  t.deepEqual(
    [manifest.counts.source!.train.images, manifest.counts.source!.val.images, manifest.counts.source!.test.images],
    [11, 2, 2],
  );
  for (const path of Object.keys(manifest.files)) t.true(existsSync(join(root, path)), path);
});

test('images are JPEGs of the requested size, named COCO-style, with ids unique across the benchmark', async (t) => {
  const ids = new Set<number>();
  for (const { subtype } of subtypes) {
    const graphs: SceneGraphs = readJson(synthPaths.gqaSceneGraphs(root, subtype));
    for (const imageName of Object.keys(graphs)) {
      const match = imageName.match(/^COCO_(\w+?)_(\d{12})$/);
      t.truthy(match, imageName);
      t.is(match![1], subtype);
      const id = Number(match![2]);
      t.false(ids.has(id));
      ids.add(id);
      const file = synthPaths.image(root, subtype, id);
      const meta = await sharp(file).metadata();
      t.is(meta.format, 'jpeg');
      t.is(meta.width, SIZE);
      t.is(meta.height, SIZE);
      t.falsy(meta.exif);
    }
  }
  t.is(ids.size, 30);
});

test('scene graphs: GQA fields, boxes inside the image, no overlaps, relations true of the boxes', (t) => {
  for (const { subtype } of subtypes) {
    const graphs: SceneGraphs = readJson(synthPaths.gqaSceneGraphs(root, subtype));
    for (const [imageId, graph] of Object.entries(graphs)) {
      t.is(graph.width, SIZE);
      t.is(graph.height, SIZE);
      const entries = Object.entries(graph.objects);
      t.true(entries.length >= 2 && entries.length <= 6, imageId);
      for (const [id, o] of entries) {
        t.true((SYNTH_SHAPES as readonly string[]).includes(o.name));
        t.true(o.attributes.length === 2 && Boolean(color(o)) && Boolean(size(o)));
        for (const v of [o.x, o.y, o.w, o.h]) t.true(Number.isInteger(v));
        t.true(o.x >= 0 && o.y >= 0 && o.x + o.w <= SIZE && o.y + o.h <= SIZE, `${imageId}/${id} outside`);
        for (const [otherId, other] of entries) {
          if (otherId === id) continue;
          const separated = o.x + o.w < other.x || other.x + other.w < o.x || o.y + o.h < other.y || other.y + other.h < o.y;
          t.true(separated, `${imageId}: ${id} overlaps ${otherId}`);
        }
        for (const relation of o.relations) {
          t.true((SYNTH_RELATIONS as readonly string[]).includes(relation.name));
          const other = graph.objects[relation.object];
          t.truthy(other, `${imageId}/${id} relates to a missing object`);
          if (holds[relation.name]) t.true(holds[relation.name](o, other), `${imageId}: ${id} ${relation.name} ${relation.object}`);
          if (relation.name === 'bigger than') t.true(size(o) === 'large' && size(other) === 'small');
          if (relation.name === 'smaller than') t.true(size(o) === 'small' && size(other) === 'large');
        }
        // Every directional relation that holds is listed.
        for (const [otherId, other] of entries) {
          if (otherId === id) continue;
          for (const [name, check] of Object.entries(holds)) {
            if (check(o, other)) t.true(o.relations.some((r) => r.name === name && r.object === otherId));
          }
        }
      }
    }
  }
});

test('VQA v2 questions and annotations: official fields, 10 answers, answers agree with the scene graph', (t) => {
  let noisy = 0;
  let questions = 0;
  for (const { subtype } of subtypes) {
    const q = readJson(synthPaths.vqaQuestions(root, subtype));
    const a = readJson(synthPaths.vqaAnnotations(root, subtype));
    for (const file of [q, a]) {
      t.is(file.task_type, 'Open-Ended');
      t.is(file.data_type, 'synthscenes');
      t.is(file.data_subtype, subtype);
      t.is(typeof file.info, 'object');
      t.is(typeof file.license, 'object');
    }
    const graphs: SceneGraphs = readJson(synthPaths.gqaSceneGraphs(root, subtype));
    t.is(q.questions.length, a.annotations.length);
    q.questions.forEach((question: any, i: number) => {
      const annotation = a.annotations[i];
      t.true(Number.isInteger(question.question_id) && Number.isInteger(question.image_id) && typeof question.question === 'string');
      t.is(annotation.question_id, question.question_id);
      t.is(annotation.image_id, question.image_id);
      t.true(['yes/no', 'number', 'other'].includes(annotation.answer_type));
      t.is(typeof annotation.question_type, 'string');
      t.true(question.question.toLowerCase().startsWith(annotation.question_type));
      t.is(annotation.answers.length, 10);
      annotation.answers.forEach((answer: any, k: number) => {
        t.is(answer.answer_id, k + 1);
        t.is(typeof answer.answer, 'string');
        t.true(['yes', 'maybe', 'no'].includes(answer.answer_confidence));
      });
      const counts = new Map<string, number>();
      for (const { answer } of annotation.answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
      t.is(counts.get(annotation.multiple_choice_answer), Math.max(...counts.values()));
      if (counts.size > 1) noisy++;
      questions++;

      const graph = graphs[synthImageName(subtype, question.image_id).replace('.jpg', '')];
      t.truthy(graph, `question ${question.question_id} has no scene graph`);
      t.is(annotation.multiple_choice_answer, expectedVqaAnswer(question.question, Object.values(graph.objects)), question.question);
      if (annotation.answer_type === 'number') t.regex(annotation.multiple_choice_answer, /^\d+$/);
      if (annotation.answer_type === 'yes/no') t.true(['yes', 'no'].includes(annotation.multiple_choice_answer));
    });
  }
  // Both clean and noisy questions occur, so normalisation and the soft score both matter.
  t.true(noisy > 0 && noisy < questions);
});

test('GQA questions: official fields, answers agree with the scene graph, entailed links resolve', (t) => {
  for (const { subtype } of subtypes) {
    const questions: Record<string, any> = readJson(synthPaths.gqaQuestions(root, subtype));
    const graphs: SceneGraphs = readJson(synthPaths.gqaSceneGraphs(root, subtype));
    let entailedLinks = 0;
    for (const [id, q] of Object.entries(questions)) {
      t.regex(id, /^\d+$/);
      t.truthy(graphs[q.imageId], `${id}: unknown imageId`);
      for (const field of ['question', 'answer', 'fullAnswer']) t.is(typeof q[field], 'string');
      t.is(q.isBalanced, true);
      t.true(['query', 'verify', 'logical', 'choose', 'compare'].includes(q.types.structural));
      t.is(typeof q.types.semantic, 'string');
      t.is(typeof q.types.detailed, 'string');
      t.true(q.groups.global === null || typeof q.groups.global === 'string');
      t.is(typeof q.groups.local, 'string');
      t.deepEqual(q.equivalent, [id]);
      for (const other of q.entailed) {
        t.truthy(questions[other], `${id} entails missing ${other}`);
        t.is(questions[other].imageId, q.imageId);
        entailedLinks++;
      }
      const objects = Object.values(graphs[q.imageId].objects);
      let m: RegExpMatchArray | null;
      if ((m = q.question.match(/^What color is the (.+)\?$/))) t.is(q.answer, color(only(objects, m[1])));
      if ((m = q.question.match(/^Is the (.+) (\w+) or (\w+)\?$/))) t.is(q.answer, color(only(objects, m[1])));
      else if ((m = q.question.match(/^Is the ([a-z ]+) (\w+)\?$/)) && (SYNTH_COLORS as readonly string[]).includes(m[2])) {
        t.is(q.answer, color(only(objects, m[1])) === m[2] ? 'yes' : 'no');
      }
      if ((m = q.question.match(/^What is (to the left of|to the right of|above|below) the (.+)\?$/))) t.is(q.answer, expectedVqaAnswer(q.question, objects));
    }
    t.true(entailedLinks > 0);
  }
});

test('VCR: official fields, tags point at objects, labels point at the right choices, metadata beside hard-linked images', (t) => {
  const regionOf = (box: number[]) => {
    const third = (v: number) => (v < SIZE / 3 ? 0 : v < (2 * SIZE) / 3 ? 1 : 2);
    const vertical = ['top', '', 'bottom'][third((box[1] + box[3]) / 2)];
    const horizontal = ['left', '', 'right'][third((box[0] + box[2]) / 2)];
    return [vertical, horizontal].filter(Boolean).join(' ') || 'center';
  };
  for (const { subtype } of subtypes) {
    const lines = readFileSync(synthPaths.vcrAnnotations(root, subtype), 'utf8').trimEnd().split('\n');
    const graphs: SceneGraphs = readJson(synthPaths.gqaSceneGraphs(root, subtype));
    for (const line of lines) {
      const item = JSON.parse(line);
      for (const field of ['annot_id', 'img_fn', 'metadata_fn', 'movie', 'img_id']) t.is(typeof item[field], 'string', field);
      t.true(Number.isInteger(item.question_number));
      t.is(item.answer_choices.length, 4);
      t.is(item.rationale_choices.length, 4);
      t.true([0, 1, 2, 3].includes(item.answer_label) && [0, 1, 2, 3].includes(item.rationale_label));
      const image = join(synthPaths.vcrImagesRoot(root), item.img_fn);
      const metadata = readJson(join(synthPaths.vcrImagesRoot(root), item.metadata_fn));
      const imageName = item.img_fn.split('/')[1].replace('.jpg', '');
      t.is(statSync(image).ino, statSync(synthPaths.image(root, subtype, Number(imageName.slice(-12)))).ino);
      t.deepEqual(metadata.names, item.objects);
      t.is(metadata.width, SIZE);
      t.is(metadata.height, SIZE);
      t.deepEqual(metadata.segms, []);
      const graphObjects = Object.values(graphs[imageName].objects);
      t.deepEqual(graphObjects.map((o) => o.name), item.objects);
      metadata.boxes.forEach((box: number[], i: number) => {
        const o = graphObjects[i];
        t.deepEqual(box, [o.x, o.y, o.x + o.w, o.y + o.h, 1]);
      });
      for (const tokens of [item.question, ...item.answer_choices, ...item.rationale_choices]) {
        for (const token of tokens) {
          if (Array.isArray(token)) for (const index of token) t.true(Number.isInteger(index) && index >= 0 && index < item.objects.length);
          else t.is(typeof token, 'string');
        }
      }
      t.is(new Set(item.answer_choices.map((c: unknown) => JSON.stringify(c))).size, 4);
      t.is(new Set(item.rationale_choices.map((c: unknown) => JSON.stringify(c))).size, 4);

      const text = (tokens: (string | number[])[]) => tokens.map((token) => (Array.isArray(token) ? `[${token.join(',')}]` : token)).join(' ');
      const question = text(item.question);
      const answer = text(item.answer_choices[item.answer_label]);
      const rationale = text(item.rationale_choices[item.rationale_label]);
      let m: RegExpMatchArray | null;
      if ((m = question.match(/^Where is \[(\d)\] compared to \[(\d)\] \?$/))) {
        const [a, b] = [graphObjects[Number(m[1])], graphObjects[Number(m[2])]];
        const direction = answer.match(/^\[\d\] is (.+) \[\d\] \.$/)![1];
        t.true(holds[direction](a, b), question);
        t.true(rationale.includes(`${size(a)} ${color(a)} [${m[1]}]`) && rationale.includes(`the ${color(b)} [${m[2]}]`), rationale);
      } else if ((m = question.match(/^Which is bigger , \[(\d)\] or \[(\d)\] \?$/))) {
        // Since generator 1.2.0 the pair may also be the same size ("both large", "both small").
        const both = answer.match(/^\[(\d)\] and \[(\d)\] are both (small|large) \.$/);
        const big = answer.match(/^\[(\d)\] is bigger than \[(\d)\] \.$/);
        t.truthy(both ?? big, answer);
        const [first, second] = both ? [graphObjects[Number(both[1])], graphObjects[Number(both[2])]] : [graphObjects[Number(big![1])], graphObjects[Number(big![2])]];
        t.is(size(first) as string, both ? both[3] : 'large');
        t.is(size(second) as string, both ? both[3] : 'small');
        t.true(rationale.includes(`${size(first)} ${color(first)}`) && rationale.includes(`${size(second)} ${color(second)}`), rationale);
      } else if ((m = question.match(/^What color is \[(\d)\] \?$/))) {
        const o = graphObjects[Number(m[1])];
        t.is(answer, `[${m[1]}] is ${color(o)} .`);
        const region = regionOf(metadata.boxes[Number(m[1])]);
        t.true(rationale.includes(region === 'center' ? 'in the center' : `in the ${region} part`), rationale);
      } else {
        t.fail(`unknown VCR question: ${question}`);
      }
    }
  }
});

test('Karpathy retrieval: one file per domain, 5 captions per image, tokens lowercase without punctuation', (t) => {
  for (const domain of SYNTH_DOMAINS) {
    const file = readJson(synthPaths.retrieval(root, domain));
    t.is(file.dataset, 'synthscenes');
    t.is(file.images.length, 15);
    const sentIds = new Set<number>();
    file.images.forEach((image: any, imgid: number) => {
      t.is(image.imgid, imgid);
      t.true((SYNTH_SPLITS as readonly string[]).includes(image.split));
      t.is(image.filepath, synthSubtype(image.split, domain));
      t.is(image.filename, synthImageName(image.filepath, image.cocoid));
      t.true(existsSync(join(synthPaths.imagesRoot(root), image.filepath, image.filename)));
      t.is(image.sentences.length, 5);
      t.deepEqual(image.sentids, image.sentences.map((s: any) => s.sentid));
      t.is(new Set(image.sentences.map((s: any) => s.raw)).size, 5);
      for (const sentence of image.sentences) {
        t.is(sentence.imgid, imgid);
        t.false(sentIds.has(sentence.sentid));
        sentIds.add(sentence.sentid);
        t.true(sentence.tokens.length > 0);
        for (const token of sentence.tokens) t.regex(token, /^[a-z0-9]+$/);
        t.deepEqual(sentence.tokens, sentence.raw.toLowerCase().match(/[a-z0-9]+/g));
      }
    });
    // Retrieval needs captions that tell scenes apart.
    const inventories = new Set(file.images.map((image: any) => image.sentences[0].tokens.filter((w: string) => w !== 'a').sort().join(' ')));
    t.true(inventories.size >= 13);
  }
});
