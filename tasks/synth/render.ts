import sharp from 'sharp';
import { SeededRandom } from '../../core/random.ts';
import type { SynthDomain } from './layout.ts';
import type { Scene, SceneObject, SynthColor } from './scene.ts';

/**
 * Draws a scene as a JPEG. Both domains draw the same kind of scene; only the look
 * differs (README.md, "The domain shift"). JPEG settings are fixed and no metadata
 * is written, so the same scene and seed give the same bytes.
 */

export const JPEG_QUALITY = 90;

const FILL: Record<SynthColor, [number, number, number]> = {
  red: [214, 40, 40],
  green: [42, 157, 58],
  blue: [31, 95, 214],
  yellow: [242, 196, 15],
  purple: [142, 63, 196],
  orange: [240, 124, 18],
  gray: [138, 138, 138],
  brown: [139, 90, 43],
};

const SOURCE_BACKGROUNDS = ['#f4f4f2', '#eef1f5', '#f5f0e8', '#fafafa'];
const TARGET_BACKGROUNDS: [number, number, number][] = [
  [34, 40, 49],
  [44, 36, 40],
  [30, 44, 38],
  [40, 40, 52],
];

/** Standard deviation of the target domain's pixel noise, in 0..255 levels. */
export const TARGET_NOISE_SIGMA = 8;

/**
 * Per-run noise, drawn once from the run's generator; each image reads a window of it at
 * a random offset. Drawing 3·side² normals per image would cost more than the encode.
 */
export class NoiseField {
  readonly width: number;
  readonly values: Int8Array;
  constructor(rng: SeededRandom, readonly imageSide: number) {
    this.width = 2 * imageSide;
    this.values = new Int8Array(this.width * this.width * 3);
    for (let i = 0; i < this.values.length; i++) {
      this.values[i] = Math.max(-127, Math.min(127, Math.round(rng.normal() * TARGET_NOISE_SIGMA)));
    }
  }
}

export async function renderSceneJpeg(scene: Scene, domain: SynthDomain, rng: SeededRandom, noise?: NoiseField): Promise<Buffer> {
  if (domain === 'source') {
    const svg = sceneSvg(scene, rng.pick(SOURCE_BACKGROUNDS), '', 1, [1, 1, 1], '');
    return sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).jpeg({ quality: JPEG_QUALITY }).toBuffer();
  }
  if (!noise || noise.imageSide !== scene.size) throw new Error('target rendering needs a noise field of the image size');
  const side = scene.size;
  const background = rng.pick(TARGET_BACKGROUNDS);
  const texture = stripeTexture(rng, side, background);
  // Lighting: a dimmer, tinted light (per image) and a spotlight falling off towards the edges.
  const brightness = 0.72 + 0.16 * rng.next();
  const tint: [number, number, number] = rng.pick([
    [1.06, 1.0, 0.88],
    [0.9, 0.98, 1.08],
    [1, 1, 1],
  ]);
  const spotlight =
    `<defs><radialGradient id="light" cx="${(0.25 + 0.5 * rng.next()).toFixed(3)}" cy="${(0.25 + 0.5 * rng.next()).toFixed(3)}" r="0.85">` +
    `<stop offset="0" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.32"/></radialGradient></defs>`;
  const svg = sceneSvg(scene, rgb(background), texture, brightness, tint, spotlight);
  const { data } = await sharp(Buffer.from(svg)).flatten({ background: '#000000' }).raw().toBuffer({ resolveWithObject: true });
  const offsetX = rng.int(0, side - 1);
  const offsetY = rng.int(0, side - 1);
  for (let y = 0; y < side; y++) {
    const noiseRow = ((y + offsetY) * noise.width + offsetX) * 3;
    const pixelRow = y * side * 3;
    for (let i = 0; i < side * 3; i++) data[pixelRow + i] = clampByte(data[pixelRow + i] + noise.values[noiseRow + i]);
  }
  const blurSigma = Math.max(0.3, 0.7 * (side / 224));
  return sharp(data, { raw: { width: side, height: side, channels: 3 } })
    .blur(blurSigma)
    .jpeg({ quality: JPEG_QUALITY })
    .toBuffer();
}

function clampByte(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

function rgb([r, g, b]: readonly number[]): string {
  return `rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})`;
}

/** Rotated stripes a little lighter than the background (an SVG <pattern> with a rotation renders ten times slower). */
function stripeTexture(rng: SeededRandom, side: number, background: readonly number[]): string {
  const period = Math.max(4, Math.round(side * (0.04 + 0.04 * rng.next())));
  const angle = rng.int(0, 179);
  const lift = 10 + rng.int(0, 12);
  const stripes: string[] = [];
  for (let x = -side; x < 2 * side; x += period) stripes.push(`<rect x="${x}" y="${-side}" width="${period / 2}" height="${3 * side}"/>`);
  return `<g fill="${rgb(background.map((c) => c + lift))}" transform="rotate(${angle} ${side / 2} ${side / 2})">${stripes.join('')}</g>`;
}

function sceneSvg(
  scene: Scene,
  background: string,
  texture: string,
  brightness: number,
  tint: readonly [number, number, number],
  spotlight: string,
): string {
  const shapes = scene.objects
    .map((o) => shapeSvg(o, rgb(FILL[o.color].map((c, i) => Math.min(255, c * brightness * tint[i])))))
    .join('');
  const overlay = spotlight ? `<rect width="100%" height="100%" fill="url(#light)"/>` : '';
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.size}" height="${scene.size}">${spotlight}` +
    `<rect width="100%" height="100%" fill="${background}"/>${texture}${shapes}${overlay}</svg>`
  );
}

function shapeSvg(o: SceneObject, fill: string): string {
  const { x, y, w: d } = o;
  const cx = x + d / 2;
  const cy = y + d / 2;
  const points = (list: [number, number][]) => `<polygon points="${list.map(([px, py]) => `${round2(px)},${round2(py)}`).join(' ')}" fill="${fill}"/>`;
  switch (o.shape) {
    case 'circle':
      return `<circle cx="${cx}" cy="${cy}" r="${d / 2}" fill="${fill}"/>`;
    case 'square':
      return `<rect x="${x}" y="${y}" width="${d}" height="${d}" fill="${fill}"/>`;
    case 'triangle':
      return points([
        [cx, y],
        [x + d, y + d],
        [x, y + d],
      ]);
    case 'diamond':
      return points([
        [cx, y],
        [x + d, cy],
        [cx, y + d],
        [x, cy],
      ]);
    case 'hexagon':
      return points(Array.from({ length: 6 }, (_, k) => polar(cx, cy, d / 2, -90 + 60 * k)));
    case 'star': {
      // Widest extent of a five-pointed star is 2·R·sin 72°; fit that to the box, centred vertically.
      const outer = d / (2 * Math.sin((72 * Math.PI) / 180));
      const height = outer * (1 + Math.cos((36 * Math.PI) / 180));
      const starCy = y + (d - height) / 2 + outer;
      return points(Array.from({ length: 10 }, (_, k) => polar(cx, starCy, k % 2 === 0 ? outer : outer * 0.45, -90 + 36 * k)));
    }
  }
}

function polar(cx: number, cy: number, radius: number, degrees: number): [number, number] {
  const radians = (degrees * Math.PI) / 180;
  return [cx + radius * Math.cos(radians), cy + radius * Math.sin(radians)];
}

function round2(value: number): string {
  return (Math.round(value * 100) / 100).toString();
}
