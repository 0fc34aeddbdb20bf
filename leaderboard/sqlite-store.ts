import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { InputError } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { FORMAT_NAME, LEADERBOARD_SCHEMA_VERSION, MIGRATIONS } from './migrations.ts';
import type { RunRecord } from './run-record.ts';
import { RunAlreadyRecordedError, type LeaderboardStore, type OpenOptions } from './store-engine.ts';

/**
 * The embedded engine: one SQLite file (WAL mode, so readers never block the one writer
 * and several processes can record runs at once). Each run is one IMMEDIATE transaction:
 * the record and its per-example scores land together or not at all.
 *
 * A file is only ever written when it is recognisably ours (our application_id and meta
 * row) or brand new (empty, no tables). Anything else is refused before a single byte
 * changes, so pointing --db at the wrong file cannot destroy it.
 */

/** "VLB1" as a big-endian int32: SQLite's header field for telling file formats apart. */
export const LEADERBOARD_APPLICATION_ID = 0x564c4231;
/** How long a writer waits for another process's transaction before giving up. */
const BUSY_TIMEOUT_MS = 30_000;
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

export function openSqliteLeaderboard(path: string, { create }: OpenOptions): LeaderboardStore {
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
  return new SqliteLeaderboard(path, db);
}

class SqliteLeaderboard implements LeaderboardStore {
  readonly engine = 'sqlite' as const;
  private readonly insertRunStatement: Database.Statement;
  private readonly insertScoreStatement: Database.Statement;

  constructor(
    readonly location: string,
    private readonly db: Database.Database,
  ) {
    this.insertRunStatement = db.prepare(`
      INSERT INTO runs (id, name, created_at, task, task_version, split, split_fingerprint, metric_version, record_version, record_json)
      VALUES (@id, @name, @createdAt, @task, @taskVersion, @split, @splitFingerprint, @metricVersion, @recordVersion, @json)`);
    this.insertScoreStatement = db.prepare('INSERT INTO example_scores (run_seq, example_id, score, image_id) VALUES (?, ?, ?, ?)');
  }

  async insertRun(record: RunRecord, perExample: readonly ExampleScore[] | null): Promise<void> {
    // better-sqlite3 is synchronous: the whole transaction runs before any other call on this connection.
    this.db
      .transaction(() => {
        if (this.db.prepare('SELECT 1 FROM runs WHERE id = ?').get(record.id)) throw new RunAlreadyRecordedError(this.location, record.id);
        const { lastInsertRowid } = this.insertRunStatement.run({ ...record, json: JSON.stringify(record) });
        for (const { id, score, image } of perExample ?? []) this.insertScoreStatement.run(lastInsertRowid, id, score, image ?? null);
      })
      .immediate();
  }

  async query<Row>(sql: string, parameters: readonly unknown[] = []): Promise<Row[]> {
    return this.db.prepare(sql).all(...parameters) as Row[];
  }

  async close(): Promise<void> {
    this.db.close();
  }
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
      db.exec(migration.sqlite);
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
