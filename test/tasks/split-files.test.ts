import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackgroundFingerprint, fingerprintSplit, readBytes, readSharedBytes, releaseSharedBytes } from '../../tasks/split-files.ts';
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
