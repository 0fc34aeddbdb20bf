/**
 * The leaderboard schema, one numbered migration at a time, written once per SQL dialect.
 * Both engines apply the same list, so a SQLite file and a PostgreSQL database at the same
 * version hold the same tables, columns and constraints (and `vlbench leaderboard copy` moves
 * rows between them one for one).
 *
 * Append-only: a released migration is never edited, a change is a new entry (in both dialects).
 */
export interface Migration {
  version: number;
  description: string;
  sqlite: string;
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'runs with their records, per-example scores',
    sqlite: `
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
    // COLLATE "C": byte order, as SQLite's BINARY, so "in example id order" is the same order on
    // both engines (the bootstrap resamples scores by position; another order gives another interval).
    // DOUBLE PRECISION: SQLite's REAL is an 8-byte float; PostgreSQL's REAL would be 4 bytes.
    postgres: `
      CREATE TABLE runs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL UNIQUE,
        name TEXT COLLATE "C" NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        task TEXT COLLATE "C" NOT NULL,
        task_version TEXT COLLATE "C" NOT NULL,
        split TEXT COLLATE "C" NOT NULL,
        split_fingerprint TEXT COLLATE "C" NOT NULL,
        metric_version TEXT COLLATE "C" NOT NULL,
        record_version INTEGER NOT NULL,
        record_json TEXT NOT NULL
      );
      CREATE INDEX runs_by_name ON runs (name);
      CREATE INDEX runs_by_task ON runs (task);
      CREATE TABLE example_scores (
        run_seq BIGINT NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        example_id TEXT COLLATE "C" NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_seq, example_id)
      );
    `,
  },
  {
    version: 2,
    description: 'per-example scores name their image (bootstrap intervals resample images)',
    // Nullable: scores recorded before, and examples without an image, are each their own unit.
    sqlite: `ALTER TABLE example_scores ADD COLUMN image_id TEXT;`,
    postgres: `ALTER TABLE example_scores ADD COLUMN image_id TEXT COLLATE "C";`,
  },
];

export const LEADERBOARD_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
/** The `meta` row that marks a database (file or PostgreSQL schema) as a vlbench leaderboard. */
export const FORMAT_NAME = 'vlbench-leaderboard';
