import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackgroundFingerprint, fingerprintSplit, readBytes, readSharedBytes, releaseSharedBytes } from '../../tasks/split-files.ts';
import { loadVqaSplit } from '../../tasks/vqa/index.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

// The fingerprint is part of the leaderboard's comparability key: hashed on a worker or on the
// calling thread, from shared memory or not, it must be the same hex string.

test('the fingerprint hashed on a worker is the one hashed on the calling thread', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-split-files-'));
  const first = join(dir, 'first.json');
  const second = join(dir, 'second.json');
  await writeFile(first, '{"questions": ["é", 1]}\n');
  await writeFile(second, Buffer.alloc(3 << 20, 'ab'));
  const shared = [await readSharedBytes(first, 'first'), await readSharedBytes(second, 'second')];
  t.true(shared.every((bytes) => bytes.buffer instanceof SharedArrayBuffer));
  t.deepEqual(shared, [await readBytes(first, 'first'), await readBytes(second, 'second')]);
  for (const imageIds of [[3, 1, 2], ['a', 'b'], []]) {
    const expected = fingerprintSplit(shared, imageIds);
    const background = new BackgroundFingerprint();
    background.hash(shared);
    t.is(await background.finish(imageIds), expected);
    // Files that are not in shared memory are hashed on the calling thread, to the same value.
    const unshared = new BackgroundFingerprint();
    unshared.hash([await readBytes(first, 'first'), await readBytes(second, 'second')]);
    t.is(await unshared.finish(imageIds), expected);
  }
  // A worker stopped before it finished: the calling thread hashes instead.
  const stopped = new BackgroundFingerprint();
  stopped.hash(shared);
  stopped.close();
  t.is(await stopped.finish([1]), fingerprintSplit(shared, [1]));
});

test('shared reads of empty files and folders give what readBytes gives', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-split-files-'));
  const empty = join(dir, 'empty.json');
  await writeFile(empty, '');
  t.deepEqual(await readSharedBytes(empty, 'questions'), Buffer.alloc(0));
  const folder = join(dir, 'folder.json');
  await mkdir(folder);
  const error = await t.throwsAsync(readBytes(folder, 'questions'));
  await t.throwsAsync(readSharedBytes(folder, 'questions'), { message: error.message });
  const missing = await t.throwsAsync(readBytes(join(dir, 'missing.json'), 'questions'));
  await t.throwsAsync(readSharedBytes(join(dir, 'missing.json'), 'questions'), { message: missing.message });
});

test('a released shared buffer is read into again, and only once it is released', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-split-files-'));
  const first = join(dir, 'first.json');
  const second = join(dir, 'second.json');
  await writeFile(first, Buffer.alloc(1 << 20, 'first'));
  await writeFile(second, Buffer.alloc((1 << 20) - 7, 'second'));
  const firstBytes = await readSharedBytes(first, 'first');
  // Not released: a second read gets memory of its own.
  const secondBytes = await readSharedBytes(second, 'second');
  t.not(secondBytes.buffer, firstBytes.buffer);
  const buffer = firstBytes.buffer;
  releaseSharedBytes(firstBytes);
  releaseSharedBytes(firstBytes);
  const again = await readSharedBytes(second, 'second');
  t.is(again.buffer, buffer);
  t.deepEqual(again, await readBytes(second, 'second'));
  t.is(again.length, (1 << 20) - 7);
  // Released once, used once: the next read gets new memory.
  t.not((await readSharedBytes(first, 'first')).buffer, buffer);
});

// The pinned value below is what every existing leaderboard row of this split carries: if it
// changes, the algorithm changed (file order, length prefix, image id text, hash), and every
// stored run would silently stop being comparable with new ones. Change it only on purpose,
// with the task versions and a note for users.
const PINNED_QUESTIONS =
  '{"info":{},"task_type":"Open-Ended","data_type":"mscoco","license":{},"data_subtype":"val2014","questions":[' +
  '{"image_id":42,"question":"What color is the cat?","question_id":42000},' +
  '{"image_id":7,"question":"How many dogs?","question_id":7000}]}\n';
const PINNED_ANNOTATIONS =
  '{"info":{},"task_type":"Open-Ended","data_type":"mscoco","license":{},"data_subtype":"val2014","annotations":[' +
  '{"question_id":7000,"image_id":7,"question_type":"how many","answer_type":"number","multiple_choice_answer":"2","answers":[' +
  Array.from({ length: 10 }, (_, i) => `{"answer":"2","answer_confidence":"yes","answer_id":${i + 1}}`).join(',') + ']},' +
  '{"question_id":42000,"image_id":42,"question_type":"what color is the","answer_type":"other","multiple_choice_answer":"black","answers":[' +
  Array.from({ length: 10 }, (_, i) => `{"answer":"black","answer_confidence":"yes","answer_id":${i + 1}}`).join(',') + ']}]}\n';
const PINNED_FINGERPRINT = 'b78de923b2285d0e5b8dc9bf064006f73d361ea183d47aaab55c8bb316eb3898';

test('the split fingerprint of a fixed VQA questions + annotations pair is pinned', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-split-files-'));
  await writeFile(join(dir, 'v2_OpenEnded_mscoco_val2014_questions.json'), PINNED_QUESTIONS);
  await writeFile(join(dir, 'v2_mscoco_val2014_annotations.json'), PINNED_ANNOTATIONS);
  // The function itself: files in order (questions, annotations), then the image ids in annotation order.
  t.is(fingerprintSplit([Buffer.from(PINNED_QUESTIONS), Buffer.from(PINNED_ANNOTATIONS)], [7, 42]), PINNED_FINGERPRINT);
  // And what the VQA loader records for the split, from the same bytes.
  const split = await loadVqaSplit({ dataDir: dir, split: 'val2014' });
  t.deepEqual(split.examples.map((example) => example.imageId), [7, 42]);
  t.is(split.fingerprint, PINNED_FINGERPRINT);
});
