import type { SeededRandom } from '../../core/random.ts';
import {
  REGIONS,
  SYNTH_COLORS,
  type Direction,
  type Scene,
  type SynthColor,
  type SynthSize,
  oppositeDirection,
  regionOf,
  soleDirection,
} from './scene.ts';

/**
 * VCR-format items for one scene. Question, answers and rationales mix words and
 * detection tags ([0] = the scene's first object). Wrong choices mention the same
 * tagged objects and read just as well; what separates them is what the picture shows
 * (which side, which colour, where), so text alone cannot pick the right one.
 *
 * Two text artefacts are designed out (generator 1.2.0), both measured by a text-only model
 * in test/vcr/synth-vcr-answerable.test.ts:
 *  - every answer form is right as often as the others: size items draw their state (a
 *    bigger, b bigger, both large, both small) uniformly, so no answer is always wrong
 *    (1.1.0's "the same size" and "both small" never were, worth 50% on size items from text);
 *  - rationales vary two attributes as a 2×2 (right/wrong colour of each object), so each
 *    attribute value appears in exactly two of the four. 1.1.0 changed one attribute of the
 *    right rationale per wrong one, making the right rationale the consensus of the four: a
 *    model comparing choices could read it off, and a per-choice model that cannot check the
 *    picture was pushed BELOW chance (text-only QA→R 19%; the ungrounded fusion scored 6.9).
 */

export type VcrToken = string | number[];

export interface VcrDraft {
  question: VcrToken[];
  answerChoices: VcrToken[][];
  rationaleChoices: VcrToken[][];
  answerLabel: number;
  rationaleLabel: number;
}

export const VCR_ITEMS_PER_IMAGE = 2;

export function vcrItemsFor(scene: Scene, rng: SeededRandom): VcrDraft[] {
  const families = [relationItem, sizeItem, colorItem];
  const items: VcrDraft[] = [];
  for (const family of rng.shuffled(families)) {
    if (items.length === VCR_ITEMS_PER_IMAGE) break;
    const item = family(scene, rng);
    if (item) items.push(item);
  }
  return items;
}

/** Words, tags and punctuation as separate tokens; "{3}" in the template becomes the tag [3]. */
function tokens(text: string): VcrToken[] {
  return text
    .replace(/([.,?!])/g, ' $1 ')
    .split(/\s+/)
    .filter(Boolean)
    .map((token) => (/^\{\d+\}$/.test(token) ? [Number(token.slice(1, -1))] : token));
}

/** Shuffles the right choice in among the wrong ones; the right one's position is uniform. */
function placeChoices(rng: SeededRandom, right: string, wrong: string[]): { choices: VcrToken[][]; label: number } {
  if (wrong.length !== 3 || new Set([right, ...wrong]).size !== 4) throw new Error(`VCR choices must be four distinct sentences: ${[right, ...wrong].join(' | ')}`);
  const label = rng.int(0, 3);
  const ordered = rng.shuffled(wrong);
  ordered.splice(label, 0, right);
  return { choices: ordered.map(tokens), label };
}

function pairs(scene: Scene, rng: SeededRandom): [number, number][] {
  const out: [number, number][] = [];
  scene.objects.forEach((_, a) => scene.objects.forEach((__, b) => a !== b && out.push([a, b])));
  return rng.shuffled(out);
}

/** Colours other than `color`, those of the scene's other objects first (plausible), then the rest. */
function otherColors(scene: Scene, color: SynthColor, rng: SeededRandom): SynthColor[] {
  const inScene = [...new Set(scene.objects.map((o) => o.color))].filter((c) => c !== color);
  const rest = SYNTH_COLORS.filter((c) => c !== color && !inScene.includes(c));
  return [...rng.shuffled(inScene), ...rng.shuffled(rest)];
}

const EVIDENCE: Record<Direction, string> = {
  'to the left of': 'further left in the picture than',
  'to the right of': 'further right in the picture than',
  above: 'higher up in the picture than',
  below: 'lower down in the picture than',
};

/** The 2×2 of right/wrong values of two attributes: the right combination and the three others, each value in two of the four. */
function twoByTwo<T>(rightA: T, wrongA: T, rightB: T, wrongB: T): { right: [T, T]; wrong: [T, T][] } {
  return { right: [rightA, rightB], wrong: [[wrongA, rightB], [rightA, wrongB], [wrongA, wrongB]] };
}

function relationItem(scene: Scene, rng: SeededRandom): VcrDraft | null {
  for (const [a, b] of pairs(scene, rng)) {
    // Exactly one direction holds, so the three other directions are all wrong answers.
    const direction = soleDirection(scene, a, b);
    if (direction === null) continue;
    const [oa, ob] = [scene.objects[a], scene.objects[b]];
    const directions: Direction[] = [direction, oppositeDirection(direction), ...(['to the left of', 'above'] as Direction[]).filter((d) => d !== direction && d !== oppositeDirection(direction)).flatMap((d) => [d, oppositeDirection(d)])];
    const answer = (d: Direction) => `{${a}} is ${d} {${b}} .`;
    const answers = placeChoices(rng, answer(direction), directions.slice(1).map(answer));
    // Rationales all support the right answer; the wrong ones misdescribe the colour of one or both tagged objects.
    const rationale = ([colorA, colorB]: [string, string]) => `The ${oa.size} ${colorA} {${a}} is ${EVIDENCE[direction]} the ${colorB} {${b}} .`;
    const colors = twoByTwo<string>(oa.color, otherColors(scene, oa.color, rng)[0], ob.color, otherColors(scene, ob.color, rng)[0]);
    const rationales = placeChoices(rng, rationale(colors.right), colors.wrong.map(rationale));
    return {
      question: tokens(`Where is {${a}} compared to {${b}} ?`),
      answerChoices: answers.choices,
      rationaleChoices: rationales.choices,
      answerLabel: answers.label,
      rationaleLabel: rationales.label,
    };
  }
  return null;
}

/** Sizes of (a, b) in a size item; drawn uniformly, so each of the four answers is right a quarter of the time. */
const SIZE_STATES: readonly [SynthSize, SynthSize][] = [['large', 'small'], ['small', 'large'], ['large', 'large'], ['small', 'small']];

function sizeItem(scene: Scene, rng: SeededRandom): VcrDraft | null {
  // The state first, then a pair in it: a scene without such a pair gets no size item (another family fills in).
  const [sizeA, sizeB] = rng.pick(SIZE_STATES);
  for (const [a, b] of pairs(scene, rng)) {
    const [oa, ob] = [scene.objects[a], scene.objects[b]];
    if (oa.size !== sizeA || ob.size !== sizeB) continue;
    const answer = (state: readonly [SynthSize, SynthSize]) =>
      state[0] !== state[1] ? (state[0] === 'large' ? `{${a}} is bigger than {${b}} .` : `{${b}} is bigger than {${a}} .`) : `{${a}} and {${b}} are both ${state[0]} .`;
    const answers = placeChoices(rng, answer([sizeA, sizeB]), SIZE_STATES.filter(([x, y]) => x !== sizeA || y !== sizeB).map(answer));
    const rationale = ([colorA, colorB]: [string, string]) => `{${a}} is a ${oa.size} ${colorA} ${oa.shape} , while {${b}} is a ${ob.size} ${colorB} ${ob.shape} .`;
    const colors = twoByTwo<string>(oa.color, otherColors(scene, oa.color, rng)[0], ob.color, otherColors(scene, ob.color, rng)[0]);
    const rationales = placeChoices(rng, rationale(colors.right), colors.wrong.map(rationale));
    return {
      question: tokens(`Which is bigger , {${a}} or {${b}} ?`),
      answerChoices: answers.choices,
      rationaleChoices: rationales.choices,
      answerLabel: answers.label,
      rationaleLabel: rationales.label,
    };
  }
  return null;
}

function colorItem(scene: Scene, rng: SeededRandom): VcrDraft {
  const index = rng.int(0, scene.objects.length - 1);
  const o = scene.objects[index];
  const answers = placeChoices(
    rng,
    `{${index}} is ${o.color} .`,
    otherColors(scene, o.color, rng)
      .slice(0, 3)
      .map((c) => `{${index}} is ${c} .`),
  );
  const region = regionOf(o, scene.size);
  // Wrong rationales put the object where other objects are (plausible), else anywhere else.
  const occupied = [...new Set(scene.objects.map((other) => regionOf(other, scene.size)))].filter((r) => r !== region);
  const elsewhere = REGIONS.filter((r) => r !== region && !occupied.includes(r));
  const wrongRegions = [...rng.shuffled(occupied), ...rng.shuffled(elsewhere)].slice(0, 3);
  const rationale = (where: string) => `{${index}} is the ${o.color} ${o.shape} ${where === 'center' ? 'in the center' : `in the ${where} part`} of the picture .`;
  const rationales = placeChoices(rng, rationale(region), wrongRegions.map(rationale));
  return {
    question: tokens(`What color is {${index}} ?`),
    answerChoices: answers.choices,
    rationaleChoices: rationales.choices,
    answerLabel: answers.label,
    rationaleLabel: rationales.label,
  };
}
