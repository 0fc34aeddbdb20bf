import test from 'ava';
import { SeededRandom } from '../../core/random.ts';
import {
  MAX_OBJECTS,
  MIN_OBJECTS,
  boxGap,
  regionOf,
  relationsBetween,
  sampleScene,
  soleObjectInDirection,
  uniqueReference,
  type Scene,
  type SceneObject,
} from '../../tasks/synth/scene.ts';

const object = (shape: SceneObject['shape'], color: SceneObject['color'], size: SceneObject['size'], x: number, y: number): SceneObject => {
  const side = size === 'large' ? 24 : 13;
  return { shape, color, size, x, y, w: side, h: side };
};

test('sampled scenes keep 2–6 objects inside the image, never touching, at any seed and size', (t) => {
  const root = new SeededRandom(123);
  const objectCounts = new Set<number>();
  for (const size of [32, 64, 224]) {
    for (let i = 0; i < 300; i++) {
      const scene = sampleScene(root.fork(`${size}/${i}`), size);
      objectCounts.add(scene.objects.length);
      t.true(scene.objects.length >= MIN_OBJECTS && scene.objects.length <= MAX_OBJECTS);
      for (const [k, o] of scene.objects.entries()) {
        t.true(o.x >= 1 && o.y >= 1 && o.x + o.w <= size - 1 && o.y + o.h <= size - 1);
        for (const other of scene.objects.slice(k + 1)) t.true(boxGap(o, other) >= 2);
      }
    }
  }
  t.deepEqual([...objectCounts].sort(), [2, 3, 4, 5, 6]);
});

test('the same generator gives the same scene', (t) => {
  t.deepEqual(sampleScene(new SeededRandom(9).fork('a'), 224), sampleScene(new SeededRandom(9).fork('a'), 224));
});

test('references are the shortest unique phrase, and null when none is unique', (t) => {
  const scene: Scene = {
    size: 100,
    objects: [
      object('circle', 'red', 'large', 5, 5),
      object('circle', 'blue', 'large', 40, 5),
      object('circle', 'blue', 'small', 70, 5),
      object('star', 'green', 'small', 5, 60),
    ],
  };
  t.is(uniqueReference(scene, 3, ['color', 'size']), 'star');
  t.is(uniqueReference(scene, 0, ['color', 'size']), 'red circle');
  t.is(uniqueReference(scene, 2, ['color', 'size']), 'small circle');
  t.is(uniqueReference(scene, 1, ['color', 'size']), 'large blue circle');
  t.is(uniqueReference(scene, 1, ['color']), null);
  t.is(uniqueReference(scene, 0, ['size']), null);
});

test('relations hold only for fully separated boxes; "what is left of" needs exactly one object on that side', (t) => {
  const scene: Scene = {
    size: 100,
    objects: [object('circle', 'red', 'large', 5, 5), object('star', 'blue', 'small', 35, 20), object('square', 'gray', 'small', 45, 65)],
  };
  t.deepEqual(relationsBetween(scene, 0, 1), ['to the left of', 'next to', 'bigger than']);
  t.deepEqual(relationsBetween(scene, 1, 0), ['to the right of', 'next to', 'smaller than']);
  // The square's box overlaps the star's horizontally: neither left nor right of it.
  t.deepEqual(relationsBetween(scene, 2, 1), ['below']);
  t.is(soleObjectInDirection(scene, 0, 'to the right of'), null);
  t.is(soleObjectInDirection(scene, 1, 'to the left of'), 0);
  t.is(soleObjectInDirection(scene, 1, 'below'), 2);
  t.is(regionOf(scene.objects[0], 100), 'top left');
  t.is(regionOf(scene.objects[2], 100), 'bottom');
});
