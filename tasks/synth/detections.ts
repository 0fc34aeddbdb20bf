import type { SeededRandom } from '../../core/random.ts';
import type { Scene } from './scene.ts';

/**
 * SynthScenes' two region files for `vlbench run --regions` (COCO detection results, pixels):
 * the true boxes of every object, and a "detector" that behaves like a real one — boxes
 * jittered in place and size, some objects missed (small ones more often), and false
 * positives on the background with low scores. Its recall and precision at IoU 0.5 go into
 * the manifest, so a table over detector boxes says how good its boxes were.
 */
export interface SynthDetection {
  image_id: number;
  bbox: [number, number, number, number];
  score: number;
  category_id: number;
}

/** How the detector errs; chosen so recall and precision land near a good COCO detector's on easy objects (~0.9). */
export const SYNTH_DETECTOR = { missSmall: 0.08, missLarge: 0.03, centreJitter: 0.08, scaleJitter: 0.1, falsePositiveRate: 0.35 } as const;

const round = (v: number) => Math.round(v * 10) / 10;

export function trueDetections(scene: Scene, imageId: number, categoryOf: (shape: string) => number): SynthDetection[] {
  return scene.objects.map((o) => ({ image_id: imageId, bbox: [o.x, o.y, o.w, o.h], score: 1, category_id: categoryOf(o.shape) }));
}

export function detectorDetections(scene: Scene, imageId: number, categoryOf: (shape: string) => number, rng: SeededRandom): SynthDetection[] {
  const side = scene.size;
  const clipBox = (x: number, y: number, w: number, h: number): [number, number, number, number] => {
    const x1 = Math.max(0, x);
    const y1 = Math.max(0, y);
    const x2 = Math.min(side, x + w);
    const y2 = Math.min(side, y + h);
    return [round(x1), round(y1), round(Math.max(1, x2 - x1)), round(Math.max(1, y2 - y1))];
  };
  const out: SynthDetection[] = [];
  for (const o of scene.objects) {
    if (rng.next() < (o.size === 'small' ? SYNTH_DETECTOR.missSmall : SYNTH_DETECTOR.missLarge)) continue;
    const scale = Math.exp(SYNTH_DETECTOR.scaleJitter * rng.normal());
    const w = o.w * scale;
    const h = o.h * Math.exp(0.5 * SYNTH_DETECTOR.scaleJitter * rng.normal()) * scale;
    const cx = o.x + o.w / 2 + SYNTH_DETECTOR.centreJitter * o.w * rng.normal();
    const cy = o.y + o.h / 2 + SYNTH_DETECTOR.centreJitter * o.h * rng.normal();
    out.push({ image_id: imageId, bbox: clipBox(cx - w / 2, cy - h / 2, w, h), score: round(50 + 50 * rng.next()) / 100, category_id: categoryOf(o.shape) });
  }
  if (rng.next() < SYNTH_DETECTOR.falsePositiveRate) {
    const w = side * (0.1 + 0.15 * rng.next());
    out.push({ image_id: imageId, bbox: clipBox(rng.next() * (side - w), rng.next() * (side - w), w, w), score: round(5 + 50 * rng.next()) / 100, category_id: categoryOf(scene.objects[0].shape) });
  }
  return out;
}

function iou(a: readonly number[], b: readonly number[]): number {
  const x1 = Math.max(a[0], b[0]);
  const y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[0] + a[2], b[0] + b[2]);
  const y2 = Math.min(a[1] + a[3], b[1] + b[3]);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/** Recall and precision of `detected` against `truth` at IoU ≥ 0.5 (each true box matched at most once, greedily by score). */
export function detectionQuality(truth: readonly SynthDetection[], detected: readonly SynthDetection[]): { recall: number; precision: number; iouThreshold: number } {
  const truthByImage = new Map<number, SynthDetection[]>();
  for (const t of truth) truthByImage.set(t.image_id, [...(truthByImage.get(t.image_id) ?? []), t]);
  let matched = 0;
  const used = new Set<SynthDetection>();
  for (const d of [...detected].sort((a, b) => b.score - a.score)) {
    const hit = (truthByImage.get(d.image_id) ?? []).find((t) => !used.has(t) && iou(t.bbox, d.bbox) >= 0.5);
    if (hit) {
      used.add(hit);
      matched++;
    }
  }
  const r = (v: number) => Math.round(v * 10000) / 10000;
  return { recall: r(matched / Math.max(1, truth.length)), precision: r(matched / Math.max(1, detected.length)), iouThreshold: 0.5 };
}
