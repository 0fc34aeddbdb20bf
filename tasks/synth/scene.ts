import type { SeededRandom } from '../../core/random.ts';
import type { GqaSceneGraph } from '../gqa/index.ts';

/**
 * What a SynthScenes picture contains, independent of how it looks: the scene
 * graph, in pixels of the rendered image. Questions, captions and VCR items are
 * all derived from this, so every answer can be checked against it.
 */

export const SYNTH_SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond', 'hexagon'] as const;
export const SYNTH_COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'gray', 'brown'] as const;
export const SYNTH_SIZES = ['small', 'large'] as const;
/** GQA's own names for these relations ("to the left of", not "left of"). */
export const SYNTH_RELATIONS = ['to the left of', 'to the right of', 'above', 'below', 'next to', 'bigger than', 'smaller than'] as const;

export type SynthShape = (typeof SYNTH_SHAPES)[number];
export type SynthColor = (typeof SYNTH_COLORS)[number];
export type SynthSize = (typeof SYNTH_SIZES)[number];
export type SynthRelation = (typeof SYNTH_RELATIONS)[number];
export type Direction = 'to the left of' | 'to the right of' | 'above' | 'below';
export const DIRECTIONS: readonly Direction[] = ['to the left of', 'to the right of', 'above', 'below'];

export const SHAPE_PLURALS: Record<SynthShape, string> = {
  circle: 'circles',
  square: 'squares',
  triangle: 'triangles',
  star: 'stars',
  diamond: 'diamonds',
  hexagon: 'hexagons',
};

export interface SceneObject {
  shape: SynthShape;
  color: SynthColor;
  size: SynthSize;
  /** Box of the drawn shape, top-left x, y plus w, h, in whole pixels (w === h). */
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Scene {
  /** Image side in pixels (images are square). */
  size: number;
  objects: SceneObject[];
}

export const MIN_OBJECTS = 2;
export const MAX_OBJECTS = 6;

/** Side of a shape's box as a fraction of the image side: two sizes far apart, so "bigger" is never a judgement call. */
const SIZE_FRACTION: Record<SynthSize, number> = { small: 0.13, large: 0.24 };

export function objectSide(size: SynthSize, imageSide: number): number {
  return Math.max(4, Math.round(SIZE_FRACTION[size] * imageSide));
}

/** Boxes closer than this are "next to" each other. */
export function nextToDistance(imageSide: number): number {
  return Math.round(0.08 * imageSide);
}

/** Minimum empty space between two boxes and between a box and the border, so shapes never touch. */
function placementGap(imageSide: number): number {
  return Math.max(2, Math.round(0.025 * imageSide));
}

export function sampleScene(rng: SeededRandom, imageSide: number): Scene {
  const wanted = rng.int(MIN_OBJECTS, MAX_OBJECTS);
  const gap = placementGap(imageSide);
  // Rejection sampling can run out of room for six large shapes; the scene then keeps
  // fewer objects, but never fewer than two (always room for those at the sizes above).
  for (;;) {
    const objects: SceneObject[] = [];
    for (let attempt = 0; objects.length < wanted && attempt < wanted * 60; attempt++) {
      const size = rng.pick(SYNTH_SIZES);
      const side = objectSide(size, imageSide);
      const x = rng.int(gap, imageSide - gap - side);
      const y = rng.int(gap, imageSide - gap - side);
      const box = { x, y, w: side, h: side };
      if (objects.some((other) => boxGap(box, other) < gap)) continue;
      objects.push({ shape: rng.pick(SYNTH_SHAPES), color: rng.pick(SYNTH_COLORS), size, ...box });
    }
    if (objects.length >= MIN_OBJECTS) return { size: imageSide, objects };
  }
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Chebyshev distance between two boxes: 0 when they overlap or touch. */
export function boxGap(a: Box, b: Box): number {
  const dx = Math.max(0, a.x - (b.x + b.w), b.x - (a.x + a.w));
  const dy = Math.max(0, a.y - (b.y + b.h), b.y - (a.y + a.h));
  return Math.max(dx, dy);
}

/**
 * Directional relations hold only when the boxes are fully separated along that axis, so
 * a shape that is both a bit left and mostly above another is "above" it and nothing else.
 */
export function holdsDirection(a: Box, b: Box, direction: Direction): boolean {
  switch (direction) {
    case 'to the left of':
      return a.x + a.w <= b.x;
    case 'to the right of':
      return b.x + b.w <= a.x;
    case 'above':
      return a.y + a.h <= b.y;
    case 'below':
      return b.y + b.h <= a.y;
  }
}

export function oppositeDirection(direction: Direction): Direction {
  switch (direction) {
    case 'to the left of':
      return 'to the right of';
    case 'to the right of':
      return 'to the left of';
    case 'above':
      return 'below';
    case 'below':
      return 'above';
  }
}

/** All relations `subject <relation> object` that hold, in a fixed order. */
export function relationsBetween(scene: Scene, subject: number, object: number): SynthRelation[] {
  const a = scene.objects[subject];
  const b = scene.objects[object];
  const relations: SynthRelation[] = DIRECTIONS.filter((direction) => holdsDirection(a, b, direction));
  if (boxGap(a, b) <= nextToDistance(scene.size)) relations.push('next to');
  if (a.size === 'large' && b.size === 'small') relations.push('bigger than');
  if (a.size === 'small' && b.size === 'large') relations.push('smaller than');
  return relations;
}

/**
 * The one object on the `direction` side of `anchor`, judged by centres, when exactly one
 * object is there and it is also fully separated from the anchor; otherwise null, because
 * "what is to the left of X?" would have no single answer.
 */
export function soleObjectInDirection(scene: Scene, anchor: number, direction: Direction): number | null {
  const b = scene.objects[anchor];
  const centre = (o: Box) => ({ cx: o.x + o.w / 2, cy: o.y + o.h / 2 });
  const { cx: bx, cy: by } = centre(b);
  const candidates = scene.objects
    .map((o, index) => ({ index, ...centre(o) }))
    .filter(({ index, cx, cy }) => {
      if (index === anchor) return false;
      switch (direction) {
        case 'to the left of':
          return cx < bx;
        case 'to the right of':
          return cx > bx;
        case 'above':
          return cy < by;
        case 'below':
          return cy > by;
      }
    });
  if (candidates.length !== 1) return null;
  const only = candidates[0].index;
  return holdsDirection(scene.objects[only], b, direction) ? only : null;
}

/** The only directional relation between two objects, or null when there are none or two (diagonal). */
export function soleDirection(scene: Scene, subject: number, object: number): Direction | null {
  const holding = DIRECTIONS.filter((direction) => holdsDirection(scene.objects[subject], scene.objects[object], direction));
  return holding.length === 1 ? holding[0] : null;
}

export type ReferenceAttribute = 'color' | 'size';

/**
 * The shortest phrase naming object `index` and no other ("circle", "red circle",
 * "large red circle"), using only the allowed attributes; null when none is unique.
 */
export function uniqueReference(scene: Scene, index: number, allowed: readonly ReferenceAttribute[]): string | null {
  const target = scene.objects[index];
  const combinations: ReferenceAttribute[][] = [[], ['color'], ['size'], ['size', 'color']];
  for (const attributes of combinations) {
    if (!attributes.every((attribute) => allowed.includes(attribute))) continue;
    const matches = scene.objects.filter(
      (o) => o.shape === target.shape && attributes.every((attribute) => o[attribute] === target[attribute]),
    );
    if (matches.length === 1) return describe(target, attributes);
  }
  return null;
}

/** Ordered pairs of distinct objects that can both be named without their size (naming by size would give comparisons away). */
export function pairsNamedByColor(scene: Scene): { a: number; b: number; refA: string; refB: string }[] {
  const pairs: { a: number; b: number; refA: string; refB: string }[] = [];
  scene.objects.forEach((_, a) =>
    scene.objects.forEach((__, b) => {
      const refA = uniqueReference(scene, a, ['color']);
      const refB = uniqueReference(scene, b, ['color']);
      if (a !== b && refA && refB && refA !== refB) pairs.push({ a, b, refA, refB });
    }),
  );
  return pairs;
}

export function describe(o: SceneObject, attributes: readonly ReferenceAttribute[]): string {
  const words: string[] = [];
  if (attributes.includes('size')) words.push(o.size);
  if (attributes.includes('color')) words.push(o.color);
  words.push(o.shape);
  return words.join(' ');
}

export function withArticle(phrase: string): string {
  return `${/^[aeiou]/.test(phrase) ? 'an' : 'a'} ${phrase}`;
}

/** Region of the picture an object's centre lies in, by thirds: "top left", "center", "bottom". */
export function regionOf(o: SceneObject, imageSide: number): string {
  const third = (value: number) => (value < imageSide / 3 ? 0 : value < (2 * imageSide) / 3 ? 1 : 2);
  const vertical = ['top', '', 'bottom'][third(o.y + o.h / 2)];
  const horizontal = ['left', '', 'right'][third(o.x + o.w / 2)];
  return [vertical, horizontal].filter(Boolean).join(' ') || 'center';
}

export const REGIONS = ['top left', 'top', 'top right', 'left', 'center', 'right', 'bottom left', 'bottom', 'bottom right'] as const;

export type { GqaSceneGraph } from '../gqa/index.ts';

export function gqaObjectId(imageId: number, index: number): string {
  return String(imageId * 10 + index);
}

export function toGqaSceneGraph(scene: Scene, imageId: number): GqaSceneGraph {
  const objects: GqaSceneGraph['objects'] = {};
  scene.objects.forEach((o, index) => {
    const relations: { name: string; object: string }[] = [];
    scene.objects.forEach((_, other) => {
      if (other === index) return;
      for (const name of relationsBetween(scene, index, other)) relations.push({ name, object: gqaObjectId(imageId, other) });
    });
    objects[gqaObjectId(imageId, index)] = { name: o.shape, x: o.x, y: o.y, w: o.w, h: o.h, attributes: [o.color, o.size], relations };
  });
  return { width: scene.size, height: scene.size, objects };
}
