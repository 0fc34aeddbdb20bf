import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { InputError, listSome } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { RUN_RECORD_VERSION, newRunId, parseRunRecord, type RunRecord, type RunRecordDraft } from './run-record.ts';

/**
 * The leaderboard store: one SQLite file (WAL mode, so readers never block the one writer
 * and several processes can record runs at once). Each run is one IMMEDIATE transaction:
 * the record and its per-example scores land together or not at all.
 *
 * A file is only ever written when it is recognisably ours (our application_id and meta
 * row) or brand new (empty, no tables). Anything else is refused before a single byte
 * changes, so pointing --db at the wrong file cannot destroy it.
 */
export const DEFAULT_LEADERBOARD_PATH = 'runs/leaderboard.db';

/** "VLB1" as a big-endian int32: SQLite's header field for telling file formats apart. */
export const LEADERBOARD_APPLICATION_ID = 0x564c4231;
const FORMAT_NAME = 'vlbench-leaderboard';
/** How long a writer waits for another process's transaction before giving up. */
const BUSY_TIMEOUT_MS = 30_000;
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Append-only: a released migration is never edited, a change is a new entry. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'runs with their records, per-example scores',
    sql: `
      CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        task TEXT NOT NULL,
        task_version TEXT NOT NULL,
        split TEXT NOT NULL,
        split_fingerprint TEXT NOT NULL,
        metric_version TEXT NOT NULL,
        record_version INTEGER NOT NULL,
        record_json TEXT NOT NULL
      );
      CREATE INDEX runs_by_name ON runs (name);
      CREATE INDEX runs_by_task ON runs (task);
      CREATE TABLE example_scores (
        run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        example_id TEXT NOT NULL,
        score REAL NOT NULL,
        PRIMARY KEY (run_seq, example_id)
      ) WITHOUT ROWID;
    `,
  },
];
export const LEADERBOARD_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

export interface LeaderboardStore {
  readonly path: string;
  readonly db: Database.Database;
  close(): void;
}

export interface OpenOptions {
  /** Create the file when it does not exist (commands that record runs); readers refuse a missing file. */
  create: boolean;
}

export function openLeaderboard(path: string, { create }: OpenOptions): LeaderboardStore {
  const absolute = resolve(path);
  const exists = existsSync(absolute);
  if (!exists && !create) {
    throw new InputError('no leaderboard database here (record a run first, or pass --db PATH)', { file: path });
  }
  if (exists) {
    refuseForeignBytes(absolute, path);
    refuseForeignSchema(absolute, path);
  } else {
    mkdirSync(dirname(absolute), { recursive: true });
  }

  let db: Database.Database;
  try {
    db = new Database(absolute, { fileMustExist: exists });
  } catch (error) {
    throw new InputError(`cannot open as a SQLite database: ${(error as Error).message}`, { file: path });
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    prepareSchema(db, path);
    db.pragma('foreign_keys = ON');
  } catch (error) {
    db.close();
    if (error instanceof InputError) throw error;
    throw new InputError(`not a readable vlbench leaderboard (${(error as Error).message}); it was left unchanged`, { file: path });
  }
  return { path, db, close: () => db.close() };
}

/** Reads only the header, so a file that is not SQLite at all is never handed to SQLite. */
function refuseForeignBytes(absolute: string, shown: string): void {
  const stats = statSync(absolute);
  if (!stats.isFile()) throw new InputError('expected a leaderboard database file, found a folder or device', { file: shown });
  // An empty file holds nothing to lose: it is how a concurrent first writer's file looks for an instant.
  if (stats.size === 0) return;
  const header = Buffer.alloc(100);
  const fd = openSync(absolute, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 100 || !header.subarray(0, 16).equals(SQLITE_MAGIC)) {
    throw new InputError('not a SQLite database (wrong header); refusing to touch it', { file: shown });
  }
  // The header's application_id, read without SQLite: a fresh file is 0 until our first write.
  const applicationId = header.readInt32BE(68);
  if (applicationId !== 0 && applicationId !== LEADERBOARD_APPLICATION_ID) {
    throw new InputError(`a SQLite database of another application (application_id 0x${(applicationId >>> 0).toString(16)}); refusing to touch it`, { file: shown });
  }
}

/**
 * Looks inside through a read-only connection first: a read-write connection to someone
 * else's WAL database would checkpoint it on close, rewriting their file.
 */
function refuseForeignSchema(absolute: string, shown: string): void {
  let state: FileState;
  let reader: Database.Database | undefined;
  try {
    reader = new Database(absolute, { readonly: true, fileMustExist: true });
    reader.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    state = inspect(reader);
  } catch (error) {
    throw new InputError(`not a readable SQLite database (${(error as Error).message}); it was left unchanged`, { file: shown });
  } finally {
    reader?.close();
  }
  if (state === 'foreign') throw foreignError(shown);
}

function prepareSchema(db: Database.Database, shown: string): void {
  // A fresh file that another process is creating this instant can look foreign from outside a
  // transaction; an IMMEDIATE transaction waits for that writer and then sees its committed schema.
  const state = inspect(db) === 'foreign' ? db.transaction(() => inspect(db)).immediate() : 'checked';
  if (state === 'foreign') throw foreignError(shown);
  // WAL cannot be switched on inside a transaction; the file is ours or empty, so this is safe.
  enableWal(db);
  db.pragma('synchronous = NORMAL');
  // IMMEDIATE: of several processes opening a fresh file at once, exactly one creates the schema.
  db.transaction(() => {
    const stateNow = inspect(db);
    if (stateNow === 'foreign') throw foreignError(shown);
    if (stateNow === 'empty') {
      db.pragma(`application_id = ${LEADERBOARD_APPLICATION_ID}`);
      db.exec(`
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL);
      `);
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('format', FORMAT_NAME);
    }
    const applied = (db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null }).version ?? 0;
    if (applied > LEADERBOARD_SCHEMA_VERSION) {
      throw new InputError(`written by a newer vlbench (schema version ${applied}, this vlbench knows up to ${LEADERBOARD_SCHEMA_VERSION}); upgrade vlbench`, { file: shown });
    }
    for (const migration of MIGRATIONS.filter((m) => m.version > applied)) {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(migration.version, migration.description, new Date().toISOString());
    }
  }).immediate();
}

/**
 * Switching to WAL needs a moment alone with the file, and SQLite answers "database is locked"
 * at once (without its busy handler) when another process is creating the same fresh file;
 * so retry until the busy timeout. A file already in WAL mode (it is persistent) needs nothing.
 */
function enableWal(db: Database.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if (!/locked|busy/i.test((error as Error).message) || Date.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

type FileState = 'ours' | 'empty' | 'foreign';

function inspect(db: Database.Database): FileState {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const tableCount = (db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
  if (applicationId === 0 && tableCount === 0) return 'empty';
  if (applicationId !== LEADERBOARD_APPLICATION_ID) return 'foreign';
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined;
  if (!hasMeta) return 'foreign';
  const format = db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined;
  return format?.value === FORMAT_NAME ? 'ours' : 'foreign';
}

function foreignError(shown: string): InputError {
  return new InputError('a SQLite database that is not a vlbench leaderboard; refusing to touch it (pass --db with a new path)', { file: shown });
}

/**
 * Records one run and its per-example scores in one transaction, after validating both.
 * This is what `vlbench run` and `vlbench leaderboard add` call.
 */
export function recordRun(store: LeaderboardStore, draft: RunRecordDraft, perExample: readonly ExampleScore[] | null): RunRecord {
  const createdAt = draft.createdAt ?? new Date().toISOString();
  const record = parseRunRecord(
    { ...draft, recordVersion: RUN_RECORD_VERSION, createdAt, id: draft.id ?? newRunId(createdAt, draft) },
    `run record "${draft.name}"`,
  );
  if (perExample) checkPerExample(record, perExample);
  const insertRun = store.db.prepare(`
    INSERT INTO runs (id, name, created_at, task, task_version, split, split_fingerprint, metric_version, record_version, record_json)
    VALUES (@id, @name, @createdAt, @task, @taskVersion, @split, @splitFingerprint, @metricVersion, @recordVersion, @json)`);
  const insertScore = store.db.prepare('INSERT INTO example_scores (run_seq, example_id, score) VALUES (?, ?, ?)');
  store.db
    .transaction(() => {
      if (store.db.prepare('SELECT 1 FROM runs WHERE id = ?').get(record.id)) {
        throw new InputError('a run with this id is already recorded', { file: store.path, record: record.id, field: 'id' });
      }
      const { lastInsertRowid } = insertRun.run({ ...record, json: JSON.stringify(record) });
      for (const { id, score } of perExample ?? []) insertScore.run(lastInsertRowid, id, score);
    })
    .immediate();
  return record;
}

/**
 * Per-example scores are contributions to the primary metric: their mean must be it (up to the
 * official rounding), or
 * every interval and paired comparison built on them would describe some other number.
 */
function checkPerExample(record: RunRecord, perExample: readonly ExampleScore[]): void {
  const where = `per-example scores of run "${record.name}"`;
  if (perExample.length === 0) throw new InputError('expected at least one per-example score, got none (pass null when the run has none)', { file: where });
  const seen = new Set<string>();
  const duplicates: string[] = [];
  let sum = 0;
  perExample.forEach((entry, index) => {
    if (typeof entry.id !== 'string' || entry.id === '') throw new InputError(`expected a non-empty string id, got ${JSON.stringify(entry.id)}`, { file: where, record: index, field: 'id' });
    if (typeof entry.score !== 'number' || !Number.isFinite(entry.score)) {
      throw new InputError(`expected a finite number, got ${String(entry.score)}`, { file: where, record: entry.id, field: 'score' });
    }
    if (seen.has(entry.id)) duplicates.push(entry.id);
    seen.add(entry.id);
    sum += entry.score;
  });
  if (duplicates.length) throw new InputError(`example ids must be unique; duplicated: ${listSome(duplicates)}`, { file: where });
  const mean = sum / perExample.length;
  const primary = record.metrics[record.primaryMetric];
  // Official evaluators report the primary rounded to 2 decimals (VQA) while per-example scores stay
  // unrounded, so half a unit in the second decimal is allowed; anything more is a different number.
  if (Math.abs(mean - primary) > 0.005 + 1e-9 * Math.max(1, Math.abs(primary))) {
    throw new InputError(
      `the mean of ${perExample.length} per-example scores is ${mean}, but metrics.${record.primaryMetric} is ${primary}; per-example scores must be contributions to the primary metric`,
      { file: where },
    );
  }
}

export interface StoredRun {
  record: RunRecord;
  /** Number of per-example scores stored with the run. */
  exampleCount: number;
}

export interface RunFilter {
  task?: string;
}

/** All runs, oldest first (the order they were recorded in). */
export function listRuns(store: LeaderboardStore, filter: RunFilter = {}): StoredRun[] {
  const rows = store.db
    .prepare(
      `SELECT r.record_json AS json, (SELECT COUNT(*) FROM example_scores s WHERE s.run_seq = r.seq) AS exampleCount
       FROM runs r ${filter.task !== undefined ? 'WHERE r.task = @task' : ''} ORDER BY r.seq`,
    )
    .all(filter.task !== undefined ? { task: filter.task } : {}) as { json: string; exampleCount: number }[];
  return rows.map((row) => ({ record: readStoredRecord(store, row.json), exampleCount: row.exampleCount }));
}

function readStoredRecord(store: LeaderboardStore, json: string): RunRecord {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new InputError('a stored run record is not valid JSON (the database was edited by hand?)', { file: store.path });
  }
  return parseRunRecord(value, store.path);
}

/**
 * Finds a run by id, or else by name. A name recorded more than once means its most recent
 * run (a CI pipeline records "main" on every merge and gates against the latest); the
 * caller is told which one through `matchedByName`.
 */
export function findRun(store: LeaderboardStore, idOrName: string, filter: RunFilter = {}): { run: StoredRun; matchedByName: number } {
  const taskClause = filter.task !== undefined ? 'AND task = @task' : '';
  const parameters = { ref: idOrName, task: filter.task };
  const byId = store.db.prepare(`SELECT seq FROM runs WHERE id = @ref ${taskClause}`).get(parameters) as { seq: number } | undefined;
  const seqs = byId
    ? [byId.seq]
    : (store.db.prepare(`SELECT seq FROM runs WHERE name = @ref ${taskClause} ORDER BY created_at DESC, seq DESC`).all(parameters) as { seq: number }[]).map((row) => row.seq);
  if (seqs.length === 0) throw new InputError(`no run with this id or name${filter.task !== undefined ? ` for task ${JSON.stringify(filter.task)}` : ''}`, { file: store.path, record: idOrName });
  const row = store.db
    .prepare('SELECT r.record_json AS json, (SELECT COUNT(*) FROM example_scores s WHERE s.run_seq = r.seq) AS exampleCount FROM runs r WHERE r.seq = ?')
    .get(seqs[0]) as { json: string; exampleCount: number };
  return { run: { record: readStoredRecord(store, row.json), exampleCount: row.exampleCount }, matchedByName: byId ? 0 : seqs.length };
}

/** The run's per-example scores, in example id order. */
export function exampleScores(store: LeaderboardStore, runId: string): ExampleScore[] {
  return store.db
    .prepare('SELECT s.example_id AS id, s.score AS score FROM example_scores s JOIN runs r ON r.seq = s.run_seq WHERE r.id = ? ORDER BY s.example_id')
    .all(runId) as ExampleScore[];
}
