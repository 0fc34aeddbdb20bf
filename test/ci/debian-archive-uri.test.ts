import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { temporaryFolders } from '../support/temporary-folders.ts';

/**
 * .ci/debian-archive-uri: CI takes bookworm-backports from the Debian archive the machine's
 * apt already uses, so the repository names no mirror. Run on apt folders written here.
 */
const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const script = join(root, '.ci', 'debian-archive-uri');
const temporaryDir = temporaryFolders(test);

async function aptFolder(files: Record<string, string>): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-apt-'));
  await mkdir(join(dir, 'sources.list.d'));
  await Promise.all(Object.entries(files).map(([name, text]) => writeFile(join(dir, name), text)));
  return dir;
}

async function archiveUri(dir: string, codename = 'bookworm'): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run('bash', [script, codename, dir]);
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

test('deb822 .sources: the first enabled deb stanza whose suites include the codename, not security, not deb-src only, continuation lines read', async (t) => {
  const dir = await aptFolder({
    'sources.list.d/a-security.sources': 'Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n',
    'sources.list.d/b-main.sources': [
      'Types: deb-src',
      'URIs: http://source-only.example/debian',
      'Suites: bookworm',
      '',
      'Types: deb',
      'URIs: http://disabled.example/debian',
      'Suites: bookworm',
      'Enabled: no',
      '',
      '# the one to take',
      'types: deb deb-src',
      'uris:',
      ' http://mirror.example/debian http://second.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      '',
    ].join('\n'),
  });
  t.deepEqual(await archiveUri(dir), { code: 0, stdout: 'http://mirror.example/debian\n' });
  t.is((await archiveUri(dir, 'trixie')).code, 1, 'no source for another release: exit 1, nothing printed');
});

test('one-line sources.list: options and comments ignored, the suite must be the codename', async (t) => {
  const dir = await aptFolder({
    'sources.list': [
      '# deb http://commented.example/debian bookworm main',
      'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://security.example/debian-security bookworm-security main',
      'deb-src http://source-only.example/debian bookworm main',
      '  deb [trusted=yes] http://mirror.example/debian bookworm main contrib # a comment',
      '',
    ].join('\n'),
  });
  t.deepEqual(await archiveUri(dir), { code: 0, stdout: 'http://mirror.example/debian\n' });
});

test('a folder with no Debian archive gives exit 1 and prints nothing', async (t) => {
  t.deepEqual(await archiveUri(await aptFolder({})), { code: 1, stdout: '' });
});

test('.ci/run names no mirror: it writes the archive URI the machine is configured with', async (t) => {
  const ci = await readFile(join(root, '.ci', 'run'), 'utf8');
  t.notRegex(ci, /:\/\//, 'no URL in .ci/run');
  t.regex(ci, /\.ci\/debian-archive-uri bookworm/);
  t.regex(ci, /"URIs: \$\{archive\}"/);
});
