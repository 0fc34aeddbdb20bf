import type { TestFn } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';

/** A `temporaryDir(prefix)` for one test file: every folder it creates is removed when the file's tests are done. */
export function temporaryFolders(test: TestFn): (prefix: string) => Promise<string> {
  const created: string[] = [];
  test.after.always(async () => {
    await Promise.all(created.map((dir) => rm(dir, { recursive: true, force: true })));
  });
  return async (prefix) => {
    const dir = await mkdtemp(prefix);
    created.push(dir);
    return dir;
  };
}
