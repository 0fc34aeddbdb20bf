import test from 'ava';
import { SeededRandom } from '../../core/random.ts';
import { holdsDirection, regionOf, sampleScene, type Direction, type Scene, type SceneObject } from '../../tasks/synth/scene.ts';
import { vcrItemsFor, type VcrDraft, type VcrToken } from '../../tasks/synth/vcr.ts';
import { renderVcrTokens } from '../../tasks/vcr/tags.ts';

/**
 * SynthScenes VCR's two promises, checked on a few thousand generated items (scenes only, no
 * pictures, so this takes seconds):
 *  - every item is answerable once each tag is resolved to its box: a solver that reads the
 *    object at each tag's box finds exactly one true answer and exactly one true rationale
 *    (given the true answer), and they are the labelled ones; resolving tags by their class name
 *    alone (what an ungrounded model has) leaves many items ambiguous;
 *  - text alone cannot pick the right choice: a per-choice text model (bag of words and word
 *    pairs over the rendered question + choice, softmax over the four choices, as a
 *    multiple-choice head scores them) trained on thousands of items stays at chance on
 *    held-out ones, for Q→A and for QA→R.
 */

interface GeneratedItem {
  scene: Scene;
  item: VcrDraft;
}

function generate(count: number, seed: number): GeneratedItem[] {
  const random = new SeededRandom(seed);
  const out: GeneratedItem[] = [];
  while (out.length < count) {
    const scene = sampleScene(random.fork(`scene-${out.length}`), 96);
    for (const item of vcrItemsFor(scene, random.fork(`vcr-${out.length}`))) out.push({ scene, item });
  }
  return out.slice(0, count);
}

/** Tags as "#i" so the sentence patterns below can read which object a tag means. */
function tagged(tokens: readonly VcrToken[]): string {
  return tokens.map((token) => (typeof token === 'string' ? token : token.map((i) => `#${i}`).join(' and '))).join(' ');
}

const EVIDENCE: Record<string, Direction> = {
  'further left in the picture than': 'to the left of',
  'further right in the picture than': 'to the right of',
  'higher up in the picture than': 'above',
  'lower down in the picture than': 'below',
};

/**
 * Whether one answer or rationale sentence is true of the scene, with `objectAt` resolving a
 * tag to the objects it may mean (one, the object at the tag's box; or, ungrounded, every
 * object of the tag's class, true only if true of all of them).
 */
function holds(sentence: string, scene: Scene, objectAt: (tag: number) => SceneObject[]): boolean {
  const all = (tag: string, check: (o: SceneObject) => boolean) => objectAt(Number(tag)).every(check);
  const pairs = (a: string, b: string, check: (x: SceneObject, y: SceneObject) => boolean) => objectAt(Number(a)).every((x) => objectAt(Number(b)).every((y) => x !== y && check(x, y)));
  let m: RegExpMatchArray | null;
  if ((m = sentence.match(/^#(\d+) is (to the left of|to the right of|above|below) #(\d+) \.$/))) return pairs(m[1], m[3], (x, y) => holdsDirection(x, y, m![2] as Direction));
  if ((m = sentence.match(/^The (small|large) (\w+) #(\d+) is (.+) the (\w+) #(\d+) \.$/))) {
    const [, size, colorA, a, evidence, colorB, b] = m;
    return pairs(a, b, (x, y) => x.size === size && x.color === colorA && y.color === colorB && holdsDirection(x, y, EVIDENCE[evidence]));
  }
  if ((m = sentence.match(/^#(\d+) is bigger than #(\d+) \.$/))) return pairs(m[1], m[2], (x, y) => x.size === 'large' && y.size === 'small');
  if ((m = sentence.match(/^#(\d+) and #(\d+) are both (small|large) \.$/))) return pairs(m[1], m[2], (x, y) => x.size === m![3] && y.size === m![3]);
  if ((m = sentence.match(/^#(\d+) is a (small|large) (\w+) (\w+) , while #(\d+) is a (small|large) (\w+) (\w+) \.$/))) {
    const [, a, sizeA, colorA, shapeA, b, sizeB, colorB, shapeB] = m;
    return pairs(a, b, (x, y) => x.size === sizeA && x.color === colorA && x.shape === shapeA && y.size === sizeB && y.color === colorB && y.shape === shapeB);
  }
  if ((m = sentence.match(/^#(\d+) is (\w+) \.$/))) return all(m[1], (o) => o.color === m![2]);
  if ((m = sentence.match(/^#(\d+) is the (\w+) (\w+) in the (.+?)(?: part)? of the picture \.$/))) {
    return all(m[1], (o) => o.color === m![2] && o.shape === m![3] && regionOf(o, scene.size) === m![4]);
  }
  throw new Error(`no pattern for "${sentence}"`);
}

/** The choices that hold: answers, and rationales given the right answer. */
function trueChoices({ scene, item }: GeneratedItem, objectAt: (tag: number) => SceneObject[]): { answers: number[]; rationales: number[] } {
  const which = (choices: VcrToken[][]) => choices.map((c, i) => (holds(tagged(c), scene, objectAt) ? i : -1)).filter((i) => i >= 0);
  return { answers: which(item.answerChoices), rationales: which(item.rationaleChoices) };
}

const items = generate(3000, 13);

test('every SynthScenes VCR item has exactly one true answer and one true rationale once tags are resolved to their boxes, and they are the labelled ones', (t) => {
  let ambiguousByName = 0;
  for (const generated of items) {
    const { scene } = generated;
    // The object at the tag's box (VCR's metadata gives the boxes in `objects` order).
    const atBox = (tag: number) => scene.objects.filter((o) => o.x === scene.objects[tag].x && o.y === scene.objects[tag].y);
    const grounded = trueChoices(generated, atBox);
    t.deepEqual(grounded, { answers: [generated.item.answerLabel], rationales: [generated.item.rationaleLabel] }, tagged(generated.item.question));
    // Ungrounded: the tag's word is a class name; a statement is only known true if it holds of every object of that class.
    const byName = (tag: number) => scene.objects.filter((o) => o.shape === scene.objects[tag].shape);
    const named = trueChoices(generated, byName);
    if (named.answers.length !== 1 || named.rationales.length !== 1) ambiguousByName++;
  }
  // The boxes are needed: a large share of items cannot be settled from class names (issue 13 counted 52%).
  t.true(ambiguousByName > 0.3 * items.length, `${ambiguousByName} of ${items.length} ambiguous by name`);
});

/** Words and word pairs of the rendered text, as a text-only model would see them. */
function textFeatures(tokens: readonly VcrToken[][], objects: readonly string[]): string[] {
  const words = tokens.flatMap((part) => renderVcrTokens([...part], objects).words.map((w) => w.toLowerCase()));
  return [...words, ...words.slice(1).map((w, i) => `${words[i]} ${w}`)];
}

/** A per-choice linear text model: score = Σ weights of the choice text's features, softmax over the 4, trained by SGD. */
function textOnlyAccuracy(train: { choices: string[][]; label: number }[], heldOut: { choices: string[][]; label: number }[]): number {
  const weights = new Map<string, number>();
  const score = (features: string[]) => features.reduce((sum, f) => sum + (weights.get(f) ?? 0), 0);
  for (let epoch = 0; epoch < 8; epoch++) {
    for (const { choices, label } of train) {
      const scores = choices.map(score);
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const total = exps.reduce((a, b) => a + b, 0);
      choices.forEach((features, c) => {
        const gradient = (c === label ? 1 : 0) - exps[c] / total;
        for (const f of features) weights.set(f, (weights.get(f) ?? 0) + 0.1 * gradient);
      });
    }
  }
  const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
  return heldOut.filter(({ choices, label }) => argmax(choices.map(score)) === label).length / heldOut.length;
}

test('a text-only model stays at chance on SynthScenes VCR, for Q→A and for QA→R', (t) => {
  const objectsOf = (scene: Scene) => scene.objects.map((o) => o.shape);
  const answerRows = items.map(({ scene, item }) => ({ choices: item.answerChoices.map((c) => textFeatures([item.question, c], objectsOf(scene))), label: item.answerLabel }));
  const rationaleRows = items.map(({ scene, item }) => ({
    choices: item.rationaleChoices.map((c) => textFeatures([item.question, item.answerChoices[item.answerLabel], c], objectsOf(scene))),
    label: item.rationaleLabel,
  }));
  const split = 2000;
  const q2a = textOnlyAccuracy(answerRows.slice(0, split), answerRows.slice(split));
  const qa2r = textOnlyAccuracy(rationaleRows.slice(0, split), rationaleRows.slice(split));
  t.log(`text only, ${items.length - split} held-out items: Q→A ${(100 * q2a).toFixed(1)}, QA→R ${(100 * qa2r).toFixed(1)} (chance 25)`);
  // 1,000 held-out items: a binomial 99% interval around 25% is about ±3.5 points. Below chance
  // is an artefact too (generator 1.1.0's near-miss rationales put this model at 19% QA→R).
  t.true(q2a > 0.2 && q2a < 0.3, `Q→A ${q2a}`);
  t.true(qa2r > 0.2 && qa2r < 0.3, `QA→R ${qa2r}`);
});
