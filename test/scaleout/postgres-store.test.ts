import test from 'ava';
import pg from 'pg';
import { InputError } from '../../core/errors.ts';
import { LEADERBOARD_SCHEMA_VERSION } from '../../leaderboard/migrations.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun, StoreUnreachableError } from '../../leaderboard/store.ts';
import { bernoulliScores, FINGERPRINT_B, syntheticDraft, temporaryDbPath } from '../leaderboard/synthetic-runs.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { freePort, missingServers, startPostgres, type PostgresServer } from './servers.ts';

// The PostgreSQL engine against a real server: same rows, same board, same gate as SQLite.
const missing = missingServers();
if (missing) console.log(`test/scaleout/postgres-store: skipped, ${missing}`);
const serverTest = missing ? test.skip : test.serial;

let server: PostgresServer | undefined;
test.before(async () => {
  if (!missing) server = await startPostgres();
});
test.after.always(async () => {
  await server?.stop();
});

// Five questions per image, as SynthScenes has: the image travels with each score on both engines.
const base = bernoulliScores(2000, 0.7, 100).map((s, i) => ({ ...s, image: `img${Math.floor(i / 5)}` }));
/** 100 examples the base got right, now wrong: a drop of exactly 5 points. */
const regressed = base.map((s, i) => (i < 400 && s.score === 100 && base.slice(0, i).filter((b) => b.score === 100).length < 100 ? { ...s, score: 0 } : s));

async function sqliteBoardWithRuns(): Promise<string> {
  const path = temporaryDbPath('pg-copy');
  const store = await openLeaderboard(path, { create: true });
  await recordRun(store, syntheticDraft('main', base, { createdAt: '2025-01-01T00:00:00.000Z' }), base);
  await recordRun(store, syntheticDraft('feature', regressed, { createdAt: '2025-01-02T00:00:00.000Z' }), regressed);
  for (const seed of [1, 2, 3]) {
    await recordRun(store, syntheticDraft(`villa-seed${seed}`, null, { seed, method: { spec: 'finetune+villa', hyperparameters: { steps: 3, seed } }, metrics: { overall: 60 + seed } }), null);
  }
  await recordRun(store, syntheticDraft('other-images', null, { splitFingerprint: FINGERPRINT_B }), null);
  await store.close();
  return path;
}

serverTest('leaderboard copy SQLite → PostgreSQL keeps every row, twice is a no-op, and both boards are identical', async (t) => {
  const sqlite = await sqliteBoardWithRuns();
  const postgres = await server!.createDatabase('copy_target');
  const first = await vlbench(['leaderboard', 'copy', '--from', sqlite, '--to', postgres]);
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, `copied 6 runs (${2 * base.length} per-example scores); 0 already there\n`);
  const again = await vlbench(['leaderboard', 'copy', '--from', sqlite, '--to', postgres]);
  t.is(again.stdout, 'copied 0 runs (0 per-example scores); 6 already there\n');

  const from = await openLeaderboard(sqlite, { create: false });
  const to = await openLeaderboard(postgres, { create: false });
  const sourceRuns = await listRuns(from);
  t.deepEqual(await listRuns(to), sourceRuns, 'every record, field for field, in recording order');
  for (const { record } of sourceRuns) t.deepEqual(await exampleScores(to, record.id), await exampleScores(from, record.id), record.name);
  const mainRun = sourceRuns.find((run) => run.record.name === 'main')!;
  t.deepEqual(new Set((await exampleScores(to, mainRun.record.id)).map((s) => s.image)).size, 400, 'the images came along');
  t.deepEqual(await to.query('SELECT CAST(COUNT(*) AS INTEGER) AS n FROM example_scores'), [{ n: 2 * base.length }]);
  await from.close();
  await to.close();

  // Same statistics on both engines: the JSON board, bootstrap intervals included, is byte for byte the same.
  const sqliteBoard = await vlbench(['leaderboard', '--db', sqlite, '--format', 'json', '--resamples', '300']);
  const postgresBoard = await vlbench(['leaderboard', '--db', postgres, '--format', 'json', '--resamples', '300']);
  t.is(postgresBoard.code, 0, postgresBoard.stderr);
  t.is(postgresBoard.stdout, sqliteBoard.stdout);
  const board = JSON.parse(postgresBoard.stdout);
  t.is(board.runCount, 6);
  t.deepEqual(board.sections.flatMap((s: { rows: { runIds: string[] }[] }) => s.rows.flatMap((r) => r.runIds)).sort(), sourceRuns.map((r) => r.record.id).sort());
});

serverTest('compare works across the PostgreSQL store: a planted regression exits 1, with the numbers SQLite gives', async (t) => {
  const sqlite = await sqliteBoardWithRuns();
  const postgres = await server!.createDatabase('compare_pg');
  t.is((await vlbench(['leaderboard', 'copy', '--from', sqlite, '--to', postgres])).code, 0);
  const onPostgres = await vlbench(['compare', 'main', 'feature', '--db', postgres, '--format', 'json', '--resamples', '500']);
  const onSqlite = await vlbench(['compare', 'main', 'feature', '--db', sqlite, '--format', 'json', '--resamples', '500']);
  t.is(onPostgres.code, 1, onPostgres.stderr);
  t.is(onPostgres.stdout, onSqlite.stdout);
  t.is(JSON.parse(onPostgres.stdout).difference, -5);
  // VLBENCH_DB stands in for --db.
  process.env.VLBENCH_DB = postgres;
  try {
    const fromEnvironment = await vlbench(['compare', 'main', 'feature', '--format', 'json', '--resamples', '500']);
    t.is(fromEnvironment.stdout, onPostgres.stdout);
  } finally {
    delete process.env.VLBENCH_DB;
  }
});

serverTest('processes opening a fresh database at once create the schema exactly once (advisory lock); readers never create it', async (t) => {
  const url = await server!.createDatabase('fresh_race');
  await t.throwsAsync(openLeaderboard(url, { create: false }), { instanceOf: InputError, message: /no vlbench leaderboard in this database/ });
  const stores = await Promise.all(Array.from({ length: 6 }, () => openLeaderboard(url, { create: true })));
  t.deepEqual(await stores[0].query('SELECT version FROM schema_migrations ORDER BY version'), Array.from({ length: LEADERBOARD_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  // Six writers recording the same run at once: one record, the others told it is there.
  const scores = bernoulliScores(30, 0.5, 7);
  const outcomes = await Promise.allSettled(stores.map((store) => recordRun(store, syntheticDraft('same', scores, { id: 'same-run-id' }), scores)));
  t.is(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
  t.true(outcomes.every((o) => o.status === 'fulfilled' || (o.reason as Error).name === 'RunAlreadyRecordedError'));
  t.deepEqual(await stores[0].query('SELECT CAST(COUNT(*) AS INTEGER) AS n FROM example_scores'), [{ n: 30 }]);
  await Promise.all(stores.map((store) => store.close()));
});

serverTest('a database whose tables are named like ours but are not ours is refused and left unchanged', async (t) => {
  const url = await server!.createDatabase('foreign_tables');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("CREATE TABLE runs (x INTEGER); INSERT INTO runs VALUES (42)");
  try {
    for (const create of [true, false]) {
      await t.throwsAsync(openLeaderboard(url, { create }), { instanceOf: InputError, message: /tables named like a vlbench leaderboard's \(runs\) but is not one/ });
    }
    t.deepEqual((await client.query('SELECT x FROM runs')).rows, [{ x: 42 }]);
    t.is((await client.query("SELECT to_regclass('meta') AS t")).rows[0].t, null);
  } finally {
    await client.end();
  }
});

serverTest('an unreachable server is a StoreUnreachableError, and the CLI exits 2 with one line', async (t) => {
  const url = `postgres://vlbench@127.0.0.1:${await freePort()}/nothing`;
  await t.throwsAsync(openLeaderboard(url, { create: true }), { instanceOf: StoreUnreachableError, message: /cannot reach the leaderboard database: .*ECONNREFUSED/ });
  const result = await vlbench(['leaderboard', '--db', url]);
  t.is(result.code, 2);
  t.regex(result.stderr, /^vlbench: error: postgres:\/\/vlbench@127\.0\.0\.1:\d+\/nothing: cannot reach the leaderboard database/);
});
