import pg from 'pg';
import { InputError } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { FORMAT_NAME, LEADERBOARD_SCHEMA_VERSION, MIGRATIONS } from './migrations.ts';
import type { RunRecord } from './run-record.ts';
import { RunAlreadyRecordedError, StoreUnreachableError, type LeaderboardStore, type OpenOptions } from './store-engine.ts';

/**
 * The shared engine: a PostgreSQL database that many machines record into at once. The schema
 * is the SQLite one (migrations.ts), created or migrated by whichever process gets there first
 * under an advisory lock, so workers starting together never race on it. Each run is one
 * transaction; the unique run id makes a second insert of the same run a no-op that is reported
 * as RunAlreadyRecordedError, whichever machine tried it.
 *
 * The database itself must exist (`createdb`): vlbench creates its tables, never databases.
 * Tables of other applications in the same database are left alone; tables named like ours but
 * not ours (no `meta` row saying so) are refused, as a foreign SQLite file is.
 */

/** pg_advisory_xact_lock key for schema changes: "VLB1", the SQLite application id. */
const MIGRATION_LOCK_KEY = 0x564c4231;
const CONNECT_TIMEOUT_MS = 10_000;
const OUR_TABLES = ['meta', 'schema_migrations', 'runs', 'example_scores'] as const;

export async function openPostgresLeaderboard(url: string, { create }: OpenOptions): Promise<LeaderboardStore> {
  const location = withoutPassword(url);
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'vlbench' });
  // An idle connection the server drops (restart, timeout) must not crash the process; the next
  // query gets a fresh connection or a clear error.
  pool.on('error', () => {});
  try {
    await prepareSchema(pool, location, create);
  } catch (error) {
    await pool.end().catch(() => {});
    throw translateError(error, location);
  }
  return new PostgresLeaderboard(location, pool);
}

class PostgresLeaderboard implements LeaderboardStore {
  readonly engine = 'postgres' as const;

  constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
  ) {}

  async insertRun(record: RunRecord, perExample: readonly ExampleScore[] | null): Promise<void> {
    await this.inTransaction(async (client) => {
      // ON CONFLICT DO NOTHING waits for a concurrent insert of the same id to commit or roll back,
      // so of two machines recording one run exactly one inserts and the other is told.
      const inserted = await client.query<{ seq: string }>(
        `INSERT INTO runs (id, name, created_at, task, task_version, split, split_fingerprint, metric_version, record_version, record_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING seq`,
        [record.id, record.name, record.createdAt, record.task, record.taskVersion, record.split, record.splitFingerprint, record.metricVersion, record.recordVersion, JSON.stringify(record)],
      );
      if (inserted.rowCount === 0) throw new RunAlreadyRecordedError(this.location, record.id);
      if (perExample && perExample.length > 0) {
        // One statement for all scores: arrays travel as two parameters, whatever their length.
        await client.query('INSERT INTO example_scores (run_seq, example_id, score, image_id) SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::text[])', [
          inserted.rows[0].seq,
          perExample.map((entry) => entry.id),
          perExample.map((entry) => entry.score),
          perExample.map((entry) => entry.image ?? null),
        ]);
      }
    });
  }

  async query<Row>(sql: string, parameters: readonly unknown[] = []): Promise<Row[]> {
    try {
      const result = await this.pool.query(numberedPlaceholders(sql), parameters as unknown[]);
      return result.rows as Row[];
    } catch (error) {
      throw translateError(error, this.location);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw translateError(error, this.location);
    }
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error instanceof InputError ? error : translateError(error, this.location);
    } finally {
      client.release();
    }
  }
}

async function prepareSchema(pool: pg.Pool, location: string, create: boolean): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      // Held to the end of this transaction: the second of two processes waits here, then finds
      // the schema the first one committed.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      const state = await inspect(client, location);
      // A reader never creates a leaderboard (as with a SQLite path that does not exist), but it
      // does migrate an older one, as the SQLite engine does.
      if (state.kind === 'empty' && !create) throw new InputError('no vlbench leaderboard in this database (record a run first, or pass another --db)', { file: location });
      if (state.kind === 'empty') {
        await client.query(`
          CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
          CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL);`);
        await client.query('INSERT INTO meta (key, value) VALUES ($1, $2)', ['format', FORMAT_NAME]);
      }
      const applied = state.kind === 'ours' ? state.version : 0;
      refuseNewer(applied, location);
      for (const migration of MIGRATIONS.filter((m) => m.version > applied)) {
        await client.query(migration.postgres);
        await client.query('INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.description, new Date().toISOString()]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  } finally {
    client.release();
  }
}

type DatabaseState = { kind: 'empty' } | { kind: 'ours'; version: number };

async function inspect(client: pg.PoolClient, location: string): Promise<DatabaseState> {
  const present = await client.query<{ name: string }>(
    'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ANY($1::text[])',
    [OUR_TABLES],
  );
  if (present.rowCount === 0) return { kind: 'empty' };
  const names = new Set(present.rows.map((row) => row.name));
  const foreign = new InputError(
    `this database has tables named like a vlbench leaderboard's (${[...names].sort().join(', ')}) but is not one; refusing to touch it (use another database or schema)`,
    { file: location },
  );
  if (!names.has('meta') || !names.has('schema_migrations')) throw foreign;
  let format: string | undefined;
  let version: number;
  try {
    format = (await client.query<{ value: string }>("SELECT value FROM meta WHERE key = 'format'")).rows[0]?.value;
    version = (await client.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations')).rows[0].version ?? 0;
  } catch {
    throw foreign;
  }
  if (format !== FORMAT_NAME) throw foreign;
  return { kind: 'ours', version };
}

function refuseNewer(applied: number, location: string): void {
  if (applied > LEADERBOARD_SCHEMA_VERSION) {
    throw new InputError(`written by a newer vlbench (schema version ${applied}, this vlbench knows up to ${LEADERBOARD_SCHEMA_VERSION}); upgrade vlbench`, { file: location });
  }
}

/** `?` → `$1, $2, …`: the shared queries in store.ts are written once, with SQLite's placeholders. */
function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** Network and server-side connection failures become StoreUnreachableError; the rest say what PostgreSQL said. */
function translateError(error: unknown, location: string): Error {
  if (error instanceof InputError) return error;
  const { code, message } = error as { code?: string; message?: string };
  const text = message ?? String(error);
  if (code === '3D000') return new InputError(`${text} (create it first, e.g. \`createdb\`)`, { file: location });
  if (code === '28P01' || code === '28000') return new InputError(`PostgreSQL refused the login: ${text}`, { file: location });
  const connectionCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'EPIPE', '57P01', '57P02', '57P03']);
  if ((code !== undefined && (connectionCodes.has(code) || code.startsWith('08'))) || /timeout exceeded when trying to connect|Connection terminated/i.test(text)) {
    return new StoreUnreachableError(location, `${text}${code && !text.includes(code) ? ` (${code})` : ''}`);
  }
  return error instanceof Error ? error : new Error(text);
}
