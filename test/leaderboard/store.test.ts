import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { InputError } from '../../core/errors.ts';
import { exampleScores, LEADERBOARD_APPLICATION_ID, LEADERBOARD_SCHEMA_VERSION, listRuns, openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { bernoulliScores, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const repositoryRoot = join(here, '..', '..');

test('a new database gets WAL mode, our application id and the schema migrations', async (t) => {
  const path = temporaryDbPath();
  await (await openLeaderboard(path, { create: true })).close();
  const db = new Database(path, { readonly: true });
  t.is(db.pragma('journal_mode', { simple: true }), 'wal');
  t.is(db.pragma('application_id', { simple: true }), LEADERBOARD_APPLICATION_ID);
  t.deepEqual(db.prepare('SELECT version FROM schema_migrations ORDER BY version').all(), Array.from({ length: LEADERBOARD_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  db.close();
});

test('per-example scores keep their image; scores without one read back without one', async (t) => {
  const path = temporaryDbPath();
  const store = await openLeaderboard(path, { create: true });
  const withImages = [{ id: 'q1', score: 100, image: '7' }, { id: 'q2', score: 0, image: '7' }, { id: 'q3', score: 50 }];
  const run = await recordRun(store, syntheticDraft('images', withImages), withImages);
  t.deepEqual(await exampleScores(store, run.id), withImages);
  const bad = [{ id: 'q1', score: 100, image: '' }];
  await t.throwsAsync(recordRun(store, syntheticDraft('bad', bad), bad), { instanceOf: InputError, message: /field "image": expected the image as a non-empty string/ });
  await store.close();
});

test('a database of schema version 1 (scores without images) is migrated: its scores read as before, new ones keep their image', async (t) => {
  const path = temporaryDbPath();
  const store = await openLeaderboard(path, { create: true });
  const old = bernoulliScores(10, 0.5, 1);
  const oldRun = await recordRun(store, syntheticDraft('old', old), old);
  await store.close();
  // Back to version 1, as an older vlbench left it.
  const db = new Database(path);
  db.exec('ALTER TABLE example_scores DROP COLUMN image_id; DELETE FROM schema_migrations WHERE version > 1;');
  db.close();
  const reopened = await openLeaderboard(path, { create: false });
  t.deepEqual(await reopened.query('SELECT version FROM schema_migrations ORDER BY version'), Array.from({ length: LEADERBOARD_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  t.deepEqual(await exampleScores(reopened, oldRun.id), [...old].sort((a, b) => (a.id < b.id ? -1 : 1)));
  const scores = [{ id: 'q1', score: 100, image: 'img1' }];
  const newRun = await recordRun(reopened, syntheticDraft('new', scores), scores);
  t.deepEqual(await exampleScores(reopened, newRun.id), scores);
  await reopened.close();
});

test('a reader never creates a database', async (t) => {
  const path = temporaryDbPath();
  await t.throwsAsync(() => openLeaderboard(path, { create: false }), { instanceOf: InputError, message: /no leaderboard database here/ });
  t.false(existsSync(path));
});

/** Opening must fail with an InputError and leave every byte as it was. */
async function assertRefusedUnchanged(t: import('ava').ExecutionContext, path: string, message: RegExp): Promise<void> {
  const before = readFileSync(path);
  for (const create of [true, false]) {
    await t.throwsAsync(() => openLeaderboard(path, { create }), { instanceOf: InputError, message });
    t.deepEqual(readFileSync(path), before);
  }
}

test('a file that is not SQLite is refused and left unchanged', async (t) => {
  const path = temporaryDbPath();
  writeFileSync(path, 'question_id,answer\n1,yes\n'.repeat(20));
  await assertRefusedUnchanged(t, path, /not a SQLite database/);
});

test('another application\'s SQLite database is refused and left unchanged', async (t) => {
  const path = temporaryDbPath();
  const other = new Database(path);
  other.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')");
  other.close();
  await assertRefusedUnchanged(t, path, /not a vlbench leaderboard/);

  const tagged = temporaryDbPath();
  const app = new Database(tagged);
  app.pragma('application_id = 1234');
  app.exec('CREATE TABLE t (x)');
  app.close();
  await assertRefusedUnchanged(t, tagged, /another application \(application_id 0x4d2\)/);
});

test('a corrupt leaderboard is refused and left unchanged', async (t) => {
  const path = temporaryDbPath();
  const store = await openLeaderboard(path, { create: true });
  const scores = bernoulliScores(200, 0.5, 9);
  await recordRun(store, syntheticDraft('r', scores), scores);
  await store.close();
  // Keep the header (so it still looks like ours) and scribble over the pages after it.
  const bytes = readFileSync(path);
  t.true(bytes.length > 4096 * 2);
  for (let i = 100; i < bytes.length; i += 7) bytes[i] = (bytes[i] * 31 + 17) & 0xff;
  writeFileSync(path, bytes);
  await assertRefusedUnchanged(t, path, /not a readable|not a vlbench leaderboard/);
});

test('a database from a newer vlbench is refused, not migrated backwards', async (t) => {
  const path = temporaryDbPath();
  await (await openLeaderboard(path, { create: true })).close();
  const db = new Database(path);
  db.prepare("INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01')").run(LEADERBOARD_SCHEMA_VERSION + 1);
  db.close();
  await t.throwsAsync(() => openLeaderboard(path, { create: true }), { instanceOf: InputError, message: /newer vlbench/ });
});

test('4 processes writing at once onto a fresh file keep every run and every score', async (t) => {
  const path = temporaryDbPath('concurrent');
  const runsEach = 25;
  const examples = 40;
  await Promise.all(
    [0, 1, 2, 3].map((worker) =>
      run(process.execPath, ['--import', 'tsx', join(here, 'concurrent-writer.ts'), path, String(worker), '4', String(runsEach), String(examples)], { cwd: repositoryRoot }),
    ),
  );
  const store = await openLeaderboard(path, { create: false });
  const runs = await listRuns(store);
  t.is(runs.length, 4 * runsEach);
  t.is(new Set(runs.map((r) => r.record.id)).size, 4 * runsEach);
  t.deepEqual(
    runs.map((r) => r.record.name).sort(),
    [0, 1, 2, 3].flatMap((w) => Array.from({ length: runsEach }, (_, i) => `worker${w}-run${i}`)).sort(),
  );
  t.true(runs.every((r) => r.exampleCount === examples));
  t.deepEqual(await store.query('SELECT CAST(COUNT(*) AS INTEGER) AS n FROM example_scores'), [{ n: 4 * runsEach * examples }]);
  await store.close();
});
