import type { SeededRandom } from '../../harness/random.ts';
import {
  DIRECTIONS,
  SHAPE_PLURALS,
  type Scene,
  type SceneObject,
  holdsDirection,
  regionOf,
  withArticle,
} from './scene.ts';

/**
 * Five captions per image, as in COCO: each from a different template and level of
 * detail (an inventory, counts, a relation, the salient objects, colours and places),
 * with wording varied at random, so captions differ between scenes and between the
 * five of one scene. The background is never described: captions mean the same in
 * both domains.
 */

export const CAPTIONS_PER_IMAGE = 5;

const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

export function captionsFor(scene: Scene, rng: SeededRandom): string[] {
  return [inventoryCaption, countCaption, relationCaption, salientCaption, placeCaption].map((template) => sentence(template(scene, rng)));
}

/** Caption tokens as in the Karpathy files: lowercase words, punctuation dropped. */
export function captionTokens(raw: string): string[] {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9 ]+/g, ' ')
    .split(/\s+/)
    .filter(Boolean);
}

function sentence(text: string): string {
  const trimmed = text.trim();
  return trimmed[0].toUpperCase() + trimmed.slice(1) + '.';
}

function list(items: string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function fullName(o: SceneObject): string {
  return `${o.size} ${o.color} ${o.shape}`;
}

function byReadingOrder(scene: Scene): SceneObject[] {
  return scene.objects.slice().sort((p, q) => p.y + p.h / 2 - (q.y + q.h / 2) || p.x - q.x);
}

function inventoryCaption(scene: Scene, rng: SeededRandom): string {
  const objects = rng.next() < 0.5 ? byReadingOrder(scene) : rng.shuffled(scene.objects);
  const names = objects.map((o) => withArticle(fullName(o)));
  const count = NUMBER_WORDS[scene.objects.length];
  return rng.pick([
    `${count} shapes: ${list(names)}`,
    `a picture of ${list(names)}`,
    `${list(names)}`,
    `an image showing ${list(names)}`,
  ]);
}

function countCaption(scene: Scene, rng: SeededRandom): string {
  const counts = new Map<string, SceneObject[]>();
  for (const o of scene.objects) counts.set(o.shape, [...(counts.get(o.shape) ?? []), o]);
  const parts = [...counts.entries()].map(([shape, group]) => {
    const colors = [...new Set(group.map((o) => o.color))];
    const noun = group.length === 1 ? shape : SHAPE_PLURALS[shape as SceneObject['shape']];
    const color = colors.length === 1 ? `${colors[0]} ` : '';
    return `${NUMBER_WORDS[group.length]} ${color}${noun}`;
  });
  const ordered = rng.shuffled(parts);
  const verb = ordered[0].startsWith('one ') ? 'is' : 'are';
  return rng.pick([`there ${verb} ${list(ordered)}`, `${list(ordered)} in the picture`, `the image contains ${list(ordered)}`]);
}

function relationCaption(scene: Scene, rng: SeededRandom): string {
  const facts: string[] = [];
  for (const a of rng.shuffled(scene.objects.map((_, i) => i))) {
    for (const b of rng.shuffled(scene.objects.map((_, i) => i))) {
      if (a === b) continue;
      const direction = rng.shuffled(DIRECTIONS).find((d) => holdsDirection(scene.objects[a], scene.objects[b], d));
      if (!direction) continue;
      const [oa, ob] = [scene.objects[a], scene.objects[b]];
      facts.push(`${withArticle(`${oa.color} ${oa.shape}`)} ${direction} ${withArticle(`${ob.color} ${ob.shape}`)}`);
      // One fact per subject, so a two-fact caption names at least three shapes.
      break;
    }
    if (facts.length === 2) break;
  }
  if (facts.length === 0) return `${list(scene.objects.map((o) => withArticle(`${o.color} ${o.shape}`)))} close together`;
  return rng.next() < 0.5 || facts.length === 1 ? `there is ${facts[0]}` : `${facts[0]}, and ${facts[1]}`;
}

function salientCaption(scene: Scene, rng: SeededRandom): string {
  const large = scene.objects.filter((o) => o.size === 'large');
  const small = scene.objects.filter((o) => o.size === 'small');
  if (large.length === 0) {
    const example = rng.pick(small);
    return `${NUMBER_WORDS[small.length]} small shapes, among them ${withArticle(`${example.color} ${example.shape}`)}`;
  }
  const named = list(large.map((o) => withArticle(`${o.color} ${o.shape}`)));
  const smallPart = small.length ? ` next to ${small.length === 1 ? 'a smaller shape' : `${NUMBER_WORDS[small.length]} smaller shapes`}` : '';
  return rng.pick([`the biggest shapes are ${named}`, `${named} in large size${smallPart}`, `large ${large.length === 1 ? 'shape' : 'shapes'}: ${named}${smallPart}`]);
}

function placeCaption(scene: Scene, rng: SeededRandom): string {
  const colors = [...new Set(scene.objects.map((o) => o.color))];
  const o = rng.pick(scene.objects);
  const where = wherePhrase(regionOf(o, scene.size));
  return rng.pick([
    `shapes in ${list(colors)}, with ${withArticle(`${o.color} ${o.shape}`)} ${where}`,
    `${withArticle(`${o.size} ${o.color} ${o.shape}`)} ${where} and ${NUMBER_WORDS[scene.objects.length - 1]} other ${scene.objects.length === 2 ? 'shape' : 'shapes'}`,
    `${list(colors)} shapes; ${withArticle(`${o.color} ${o.shape}`)} sits ${where}`,
  ]);
}

function wherePhrase(region: string): string {
  if (region === 'center') return 'in the middle';
  if (region === 'top' || region === 'bottom') return `at the ${region}`;
  if (region === 'left' || region === 'right') return `on the ${region}`;
  return `in the ${region} corner`;
}
