import type { SeededRandom } from '../../core/random.ts';
import {
  REGIONS,
  SYNTH_COLORS,
  type Direction,
  type Scene,
  type SynthColor,
  oppositeDirection,
  regionOf,
  soleDirection,
} from './scene.ts';

/**
 * VCR-format items for one scene. Question, answers and rationales mix words and
 * detection tags ([0] = the scene's first object). Wrong choices mention the same
 * tagged objects and read just as well; what separates them is what the picture shows
 * (which side, which colour, where), so text alone cannot pick the right one.
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

function relationItem(scene: Scene, rng: SeededRandom): VcrDraft | null {
  for (const [a, b] of pairs(scene, rng)) {
    // Exactly one direction holds, so the three other directions are all wrong answers.
    const direction = soleDirection(scene, a, b);
    if (direction === null) continue;
    const [oa, ob] = [scene.objects[a], scene.objects[b]];
    const directions: Direction[] = [direction, oppositeDirection(direction), ...(['to the left of', 'above'] as Direction[]).filter((d) => d !== direction && d !== oppositeDirection(direction)).flatMap((d) => [d, oppositeDirection(d)])];
    const answer = (d: Direction) => `{${a}} is ${d} {${b}} .`;
    const answers = placeChoices(rng, answer(direction), directions.slice(1).map(answer));
    // Rationales all support the right answer; the wrong ones misdescribe what the tagged objects look like.
    const rationale = (colorA: string, sizeA: string, colorB: string) => `The ${sizeA} ${colorA} {${a}} is ${EVIDENCE[direction]} the ${colorB} {${b}} .`;
    const wrongColorA = otherColors(scene, oa.color, rng)[0];
    const wrongColorB = otherColors(scene, ob.color, rng)[0];
    const wrongSize = oa.size === 'large' ? 'small' : 'large';
    const rationales = placeChoices(rng, rationale(oa.color, oa.size, ob.color), [
      rationale(wrongColorA, oa.size, ob.color),
      rationale(oa.color, oa.size, wrongColorB),
      rationale(oa.color, wrongSize, ob.color),
    ]);
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

function sizeItem(scene: Scene, rng: SeededRandom): VcrDraft | null {
  for (const [a, b] of pairs(scene, rng)) {
    const [oa, ob] = [scene.objects[a], scene.objects[b]];
    if (oa.size === ob.size) continue;
    const [big, small] = oa.size === 'large' ? [a, b] : [b, a];
    const [ob1, os] = [scene.objects[big], scene.objects[small]];
    const answers = placeChoices(rng, `{${big}} is bigger than {${small}} .`, [
      `{${small}} is bigger than {${big}} .`,
      `{${a}} and {${b}} are the same size .`,
      `{${a}} and {${b}} are both small .`,
    ]);
    const rationale = (colorBig: string, colorSmall: string) =>
      `{${big}} is a large ${colorBig} ${ob1.shape} , while {${small}} is a small ${colorSmall} ${os.shape} .`;
    const wrongBig = otherColors(scene, ob1.color, rng);
    const wrongSmall = otherColors(scene, os.color, rng);
    const rationales = placeChoices(rng, rationale(ob1.color, os.color), [
      rationale(wrongBig[0], os.color),
      rationale(ob1.color, wrongSmall[0]),
      rationale(wrongBig[1], wrongSmall[1]),
    ]);
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
