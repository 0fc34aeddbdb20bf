import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { generateSynthScenes, readSynthManifest, synthSplitSizes } from '../../tasks/synth/index.ts';

let scratch = '';
test.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'synth-determinism-'));
});
test.after.always(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const small = { images: 12, seed: 5, size: 64 } as const;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

test('same seed and options give byte-identical files, and the manifest lists every file with its sha256', async (t) => {
  const first = join(scratch, 'first');
  const second = join(scratch, 'second');
  const manifest = await generateSynthScenes({ outDir: first, ...small });
  await generateSynthScenes({ outDir: second, ...small });

  const files = await listFiles(first);
  t.deepEqual(files, [...Object.keys(manifest.files), 'manifest.json'].sort());
  t.deepEqual(await listFiles(second), files);
  for (const file of files) t.is(sha256(join(second, file)), sha256(join(first, file)), file);
  for (const [file, hash] of Object.entries(manifest.files)) t.is(sha256(join(first, file)), hash, file);
  t.deepEqual(await readSynthManifest(first), manifest);
});

test('another seed gives other images and annotations', async (t) => {
  const a = await generateSynthScenes({ outDir: join(scratch, 'seed-a'), ...small, domains: ['source'] });
  const b = await generateSynthScenes({ outDir: join(scratch, 'seed-b'), ...small, seed: 6, domains: ['source'] });
  const path = 'images/train_source/COCO_train_source_000000000001.jpg';
  t.not(a.files[path], b.files[path]);
  t.not(a.files['vqa/v2_synthscenes_train_source_annotations.json'], b.files['vqa/v2_synthscenes_train_source_annotations.json']);
});

test('a domain generated alone has the same ids and bytes as when both are generated', async (t) => {
  const both = await generateSynthScenes({ outDir: join(scratch, 'both'), ...small });
  const alone = await generateSynthScenes({ outDir: join(scratch, 'target-only'), ...small, domains: ['target'] });
  const targetFiles = Object.keys(both.files).filter((path) => path.includes('target'));
  // The detection files hold every generated image of both domains; the target's records are the same.
  t.deepEqual(Object.keys(alone.files).filter((path) => !path.startsWith('detections/')), targetFiles);
  for (const path of targetFiles) t.is(alone.files[path], both.files[path], path);
  for (const file of ['detections/true_boxes.json', 'detections/detector.json']) {
    const records = async (dir: string) => JSON.parse(await readFile(join(scratch, dir, file), 'utf8')) as { image_id: number }[];
    const targetIds = new Set((await records('target-only')).map((r) => r.image_id));
    t.deepEqual(await records('target-only'), (await records('both')).filter((r) => targetIds.has(r.image_id)), file);
  }
  t.deepEqual(alone.options.domains, ['target']);
  t.is(alone.counts.source, undefined);
});

test('every split gets at least one image, 15 % each for val and test', (t) => {
  t.deepEqual(synthSplitSizes(3), { train: 1, val: 1, test: 1 });
  t.deepEqual(synthSplitSizes(12), { train: 8, val: 2, test: 2 });
  t.deepEqual(synthSplitSizes(2000), { train: 1400, val: 300, test: 300 });
  for (let n = 3; n <= 60; n++) {
    const sizes = synthSplitSizes(n);
    t.true(sizes.train >= 1 && sizes.val >= 1 && sizes.test >= 1);
    t.is(sizes.train + sizes.val + sizes.test, n);
  }
});

test('a failed --force run leaves the earlier folder as it was and no temporary folder behind', async (t) => {
  const parent = join(scratch, 'atomic');
  const out = join(parent, 'bench');
  await generateSynthScenes({ outDir: out, ...small, domains: ['source'] });
  const before = await readFile(join(out, 'manifest.json'), 'utf8');
  const error = await t.throwsAsync(
    generateSynthScenes({
      outDir: out,
      ...small,
      seed: 99,
      force: true,
      onProgress: ({ done }) => {
        if (done === 5) throw new Error('simulated failure');
      },
    }),
  );
  t.is(error?.message, 'simulated failure');
  t.is(await readFile(join(out, 'manifest.json'), 'utf8'), before);
  t.deepEqual(await readdir(parent), ['bench']);

  const replaced = await generateSynthScenes({ outDir: out, ...small, seed: 99, force: true });
  t.is(replaced.seed, 99);
  t.deepEqual(await readdir(parent), ['bench']);
});

test('refuses a non-empty folder without force, and a non-SynthScenes folder even with force', async (t) => {
  const out = join(scratch, 'occupied');
  await mkdir(out);
  await writeFile(join(out, 'notes.txt'), 'keep me');
  const refused = await t.throwsAsync(generateSynthScenes({ outDir: out, ...small }), { instanceOf: InputError });
  t.regex(refused!.message, /not empty; pass --force/);
  const forced = await t.throwsAsync(generateSynthScenes({ outDir: out, ...small, force: true }), { instanceOf: InputError });
  t.regex(forced!.message, /not a SynthScenes folder/);
  t.is(await readFile(join(out, 'notes.txt'), 'utf8'), 'keep me');

  const empty = join(scratch, 'empty');
  await mkdir(empty);
  await generateSynthScenes({ outDir: empty, ...small, domains: ['source'] });
  t.truthy(await readSynthManifest(empty));
});

test('bad options are InputErrors naming the option', async (t) => {
  const out = join(scratch, 'never');
  for (const [options, field] of [
    [{ images: 2 }, 'images'],
    [{ images: 1.5 }, 'images'],
    [{ seed: -1 }, 'seed'],
    [{ size: 16 }, 'size'],
    [{ domains: [] }, 'domains'],
    [{ domains: ['source', 'source'] }, 'domains'],
    [{ domains: ['other'] }, 'domains'],
  ] as const) {
    const error = await t.throwsAsync(generateSynthScenes({ outDir: out, ...small, ...(options as object) }), { instanceOf: InputError });
    t.is((error as InputError).location.field, field);
  }
});

test('readSynthManifest explains what is wrong with a folder', async (t) => {
  const notSynth = join(scratch, 'not-synth');
  await mkdir(notSynth);
  const missing = await t.throwsAsync(readSynthManifest(notSynth), { instanceOf: InputError });
  t.regex(missing!.message, /not a SynthScenes folder/);

  await writeFile(join(notSynth, 'manifest.json'), '{"generator": "synthscenes",');
  const broken = await t.throwsAsync(readSynthManifest(notSynth), { instanceOf: InputError });
  t.regex(broken!.message, /manifest\.json: not valid JSON/);

  await writeFile(join(notSynth, 'manifest.json'), JSON.stringify({ generator: 'other' }));
  t.regex((await t.throwsAsync(readSynthManifest(notSynth)))!.message, /not a SynthScenes manifest/);

  const good = join(scratch, 'good');
  const manifest = await generateSynthScenes({ outDir: good, ...small, domains: ['source'] });
  await writeFile(join(good, 'manifest.json'), JSON.stringify({ ...manifest, seed: 'five' }));
  const invalid = await t.throwsAsync(readSynthManifest(good), { instanceOf: InputError });
  t.is((invalid as InputError).location.field, 'seed');
});
