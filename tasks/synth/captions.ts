import type { SeededRandom } from '../../core/random.ts';
import {
  DIRECTIONS,
  type Scene,
  type SceneObject,
  holdsDirection,
  regionOf,
  withArticle,
} from './scene.ts';

/**
 * Five captions per image, as in COCO. Every caption names every object with its size,
 * colour and shape, so a caption identifies its scene among thousands (retrieval must be
 * decidable from the text); the five differ in the order they list the objects (reading
 * order, left to right, large first, at random) and in what they add (a count, a spatial
 * relation, a place). The background is never described: captions mean the same in both
 * domains.
 */

export const CAPTIONS_PER_IMAGE = 5;

const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

export function captionsFor(scene: Scene, rng: SeededRandom): string[] {
  return [inventoryCaption, leftToRightCaption, largeFirstCaption, relationCaption, placeCaption].map((template) => sentence(template(scene, rng)));
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

function named(objects: SceneObject[]): string {
  return list(objects.map((o) => withArticle(fullName(o))));
}

function inventoryCaption(scene: Scene, rng: SeededRandom): string {
  const count = NUMBER_WORDS[scene.objects.length];
  return rng.pick([`${count} shapes: ${named(byReadingOrder(scene))}`, `a picture of ${count} shapes, ${named(byReadingOrder(scene))}`]);
}

function leftToRightCaption(scene: Scene, rng: SeededRandom): string {
  const objects = scene.objects.slice().sort((p, q) => p.x + p.w / 2 - (q.x + q.w / 2) || p.y - q.y);
  return rng.pick([`from left to right: ${named(objects)}`, `left to right there are ${named(objects)}`]);
}

function largeFirstCaption(scene: Scene, rng: SeededRandom): string {
  const large = rng.shuffled(scene.objects.filter((o) => o.size === 'large'));
  const small = rng.shuffled(scene.objects.filter((o) => o.size === 'small'));
  return rng.pick(['an image showing', 'the image contains', 'there is']) + ` ${named([...large, ...small])}`;
}

function relationCaption(scene: Scene, rng: SeededRandom): string {
  const objects = rng.shuffled(scene.objects);
  let fact = '';
  for (const a of objects) {
    for (const b of objects) {
      if (a === b) continue;
      const direction = rng.shuffled(DIRECTIONS).find((d) => holdsDirection(a, b, d));
      if (!direction) continue;
      fact = `the ${a.color} ${a.shape} is ${direction} the ${b.color} ${b.shape}`;
      break;
    }
    if (fact) break;
  }
  return `${named(objects)}${fact ? `; ${fact}` : ' close together'}`;
}

function placeCaption(scene: Scene, rng: SeededRandom): string {
  const o = rng.pick(scene.objects);
  return `${named(rng.shuffled(scene.objects))}, with the ${o.color} ${o.shape} ${wherePhrase(regionOf(o, scene.size))}`;
}

function wherePhrase(region: string): string {
  if (region === 'center') return 'in the middle';
  if (region === 'top' || region === 'bottom') return `at the ${region}`;
  if (region === 'left' || region === 'right') return `on the ${region}`;
  return `in the ${region} corner`;
}
