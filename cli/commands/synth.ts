import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { InputError } from '../../core/errors.ts';
import { parseWholeNumber } from '../flags.ts';
import {
  SYNTH_DEFAULT_SIZE,
  SYNTH_DOMAINS,
  SYNTH_HELD_OUT_FRACTION,
  SYNTH_MAX_IMAGES,
  SYNTH_MAX_SIZE,
  SYNTH_MIN_IMAGES,
  SYNTH_MIN_SIZE,
  SYNTH_SPLITS,
  type SynthDomain,
  type SynthManifest,
  generateSynthScenes,
} from '../../tasks/synth/index.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/** Images per domain when --images is not given: 2,000 images with both domains. */
export const SYNTH_DEFAULT_IMAGES = 1000;

interface SynthCommandOptions {
  out: string;
  images: string;
  seed: string;
  size: string;
  domains: string;
  force?: boolean;
}

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description(COMMAND_SUMMARIES.synth.description)
    .requiredOption('--out <dir>', 'output folder (must be empty or missing, unless --force)')
    .option('--images <n>', `images per domain, split ${Math.round(100 * (1 - 2 * SYNTH_HELD_OUT_FRACTION))}/${Math.round(100 * SYNTH_HELD_OUT_FRACTION)}/${Math.round(100 * SYNTH_HELD_OUT_FRACTION)} into train/val/test`, String(SYNTH_DEFAULT_IMAGES))
    .option('--seed <n>', 'random seed; the same seed and options give byte-identical files', '0')
    .option('--size <px>', 'image side in pixels', String(SYNTH_DEFAULT_SIZE))
    .option('--domains <list>', `comma-separated domains to generate (${SYNTH_DOMAINS.join(', ')})`, SYNTH_DOMAINS.join(','))
    .option('--force', 'replace an existing SynthScenes folder at --out')
    .action(async (options: SynthCommandOptions) => {
      const images = parseWholeNumber('--images', options.images, SYNTH_MIN_IMAGES, SYNTH_MAX_IMAGES);
      const seed = parseWholeNumber('--seed', options.seed, 0, 2 ** 32 - 1);
      const size = parseWholeNumber('--size', options.size, SYNTH_MIN_SIZE, SYNTH_MAX_SIZE);
      const domains = parseDomains(options.domains);
      if (options.out.trim() === '') throw new InputError('expected a folder path', { file: '--out' });
      const outDir = resolve(options.out);

      const bar = process.stderr.isTTY
        ? new cliProgress.SingleBar(
            { stream: process.stderr, format: 'synth [{bar}] {value}/{total} images | {eta_formatted} left', hideCursor: true },
            cliProgress.Presets.shades_classic,
          )
        : null;
      const started = performance.now();
      try {
        bar?.start(images * domains.length, 0);
        const manifest = await generateSynthScenes({
          outDir,
          images,
          seed,
          size,
          domains,
          force: options.force ?? false,
          onProgress: ({ done }) => bar?.update(done),
        });
        bar?.stop();
        process.stdout.write(formatSynthSummary(manifest, outDir, (performance.now() - started) / 1000));
      } catch (error) {
        bar?.stop();
        throw error;
      }
    });
}

function parseDomains(text: string): SynthDomain[] {
  const names = text.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(SYNTH_DOMAINS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0 || new Set(names).size !== names.length) {
    throw new InputError(`expected a comma-separated list of ${SYNTH_DOMAINS.join(', ')} (each at most once), got ${JSON.stringify(text)}`, { file: '--domains' });
  }
  return names as SynthDomain[];
}

/** The table `vlbench synth` prints: counts per domain and split, then time and throughput. */
export function formatSynthSummary(manifest: SynthManifest, outDir: string, seconds: number): string {
  const header = ['domain', 'split', 'images', 'vqa questions', 'gqa questions', 'vcr items', 'captions'];
  const rows: string[][] = [];
  const totals = [0, 0, 0, 0, 0];
  for (const domain of manifest.options.domains) {
    for (const split of SYNTH_SPLITS) {
      const c = manifest.counts[domain]?.[split];
      if (!c) continue;
      const values = [c.images, c.vqaQuestions, c.gqaQuestions, c.vcrItems, c.captions];
      values.forEach((v, i) => (totals[i] += v));
      rows.push([domain, split, ...values.map(String)]);
    }
  }
  rows.push(['total', '', ...totals.map(String)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  const imagesTotal = totals[0];
  return [
    `SynthScenes ${manifest.generatorVersion}: seed ${manifest.seed}, ${manifest.options.size} px, ${Object.keys(manifest.files).length} files in ${outDir}`,
    line(header),
    ...rows.map(line),
    `${imagesTotal} images in ${seconds.toFixed(1)} s (${(imagesTotal / Math.max(seconds, 1e-9)).toFixed(0)} images/s)`,
    '',
  ].join('\n');
}
