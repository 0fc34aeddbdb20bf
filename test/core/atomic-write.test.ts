import test from 'ava';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomically, type AtomicWriteFileSystem, type AtomicWriteHandle } from '../../core/atomic-write.ts';
import { InputError } from '../../core/errors.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

/** The real file system, each call recorded as "operation path" (the temporary's name shown as TEMP, the folder as DIR). */
function recordingFileSystem(folder: string, failOn?: string): { fileSystem: AtomicWriteFileSystem; calls: string[] } {
  const calls: string[] = [];
  const name = (path: string) => (path === folder ? 'DIR' : path.endsWith('.tmp') ? 'TEMP' : path.slice(folder.length + 1));
  const record = (call: string) => {
    calls.push(call);
    if (call === failOn) throw Object.assign(new Error(`${call} failed (planted)`), { code: 'EIO' });
  };
  const fileSystem: AtomicWriteFileSystem = {
    mkdir: async (path, options) => (record(`mkdir ${name(path)}`), mkdir(path, options)),
    rename: async (from, to) => (record(`rename ${name(from)} ${name(to)}`), rename(from, to)),
    rm: async (path, options) => (record(`rm ${name(path)}`), rm(path, options)),
    open: async (path, flags) => {
      record(`open ${name(path)} ${flags}`);
      const handle = await open(path, flags);
      const wrapped: AtomicWriteHandle = {
        writeFile: async (content) => (record(`write ${name(path)}`), handle.writeFile(content)),
        sync: async () => (record(`fsync ${name(path)}`), handle.sync()),
        close: async () => (record(`close ${name(path)}`), handle.close()),
      };
      return wrapped;
    },
  };
  return { fileSystem, calls };
}

test('the temporary is fsynced before the rename, and the folder is fsynced after it', async (t) => {
  const folder = await temporaryDir(join(tmpdir(), 'vlbench-atomic-'));
  const { fileSystem, calls } = recordingFileSystem(folder);
  await writeFileAtomically(join(folder, 'record.json'), '{"a":1}', { fileSystem });
  t.deepEqual(calls, [
    'mkdir DIR',
    'open TEMP w',
    'write TEMP',
    'fsync TEMP',
    'close TEMP',
    'rename TEMP record.json',
    'open DIR r',
    'fsync DIR',
    'close DIR',
  ]);
  t.is(await readFile(join(folder, 'record.json'), 'utf8'), '{"a":1}');
});

test('a failed fsync of the temporary: no rename, the previous file as it was, no temporary left, an InputError naming the file', async (t) => {
  const folder = await temporaryDir(join(tmpdir(), 'vlbench-atomic-'));
  const file = join(folder, 'record.json');
  await writeFile(file, 'previous');
  const { fileSystem, calls } = recordingFileSystem(folder, 'fsync TEMP');
  const error = await t.throwsAsync(writeFileAtomically(file, 'next', { fileSystem }), { instanceOf: InputError });
  t.regex(error!.message, /cannot write: EIO/);
  t.regex(error!.message, /record\.json/);
  t.false(calls.some((c) => c.startsWith('rename')), 'never renamed');
  t.true(calls.includes('close TEMP'), 'the temporary was closed');
  t.is(await readFile(file, 'utf8'), 'previous');
  t.deepEqual(await readdir(folder), ['record.json']);
});

test('with the real file system: the folder is made, the content written, nothing else left', async (t) => {
  const folder = await temporaryDir(join(tmpdir(), 'vlbench-atomic-'));
  const file = join(folder, 'made', 'out.bin');
  await writeFileAtomically(file, Uint8Array.of(1, 2, 3));
  await Promise.all([writeFileAtomically(join(folder, 'made', 'same.txt'), 'one'), writeFileAtomically(join(folder, 'made', 'same.txt'), 'two')]);
  t.deepEqual([...(await readFile(file))], [1, 2, 3]);
  t.true(['one', 'two'].includes(await readFile(join(folder, 'made', 'same.txt'), 'utf8')));
  t.deepEqual((await readdir(join(folder, 'made'))).sort(), ['out.bin', 'same.txt']);
});
