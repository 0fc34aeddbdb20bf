import { InputError, listSome } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { RUN_RECORD_VERSION, newRunId, parseRunRecord, type RunRecord, type RunRecordDraft } from './run-record.ts';
import { openPostgresLeaderboard, withoutPassword } from './postgres-store.ts';
import { withConnectRetries } from '../core/connect-retries.ts';
import { StoreUnreachableError } from './store-engine.ts';
import { openSqliteLeaderboard } from './sqlite-store.ts';
import type { LeaderboardStore, OpenOptions } from './store-engine.ts';

/**
 * The leaderboard store: one interface, two engines. A path is an embedded SQLite file (the
 * default, one machine); a `postgres://` or `postgresql://` URL is a shared PostgreSQL database
 * that many machines record into. Both apply the same migrations (migrations.ts) and answer the
 * same queries below, so the board, its statistics and `compare` cannot tell them apart.
 *
 * Every call is asynchronous because the PostgreSQL driver is; the SQLite engine answers at once.
 */
export const DEFAULT_LEADERBOARD_PATH = 'runs/leaderboard.db';
/** Where the leaderboard is when no --db is given: this variable, else DEFAULT_LEADERBOARD_PATH. */
export const LEADERBOARD_ENV_VARIABLE = 'VLBENCH_DB';

export { LEADERBOARD_SCHEMA_VERSION } from './migrations.ts';
export { LEADERBOARD_APPLICATION_ID } from './sqlite-store.ts';
export { RunAlreadyRecordedError, StoreUnreachableError, type LeaderboardStore, type OpenOptions } from './store-engine.ts';

export function isPostgresLocation(location: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(location);
}

/** The --db a command uses when it is given none. */
export function defaultLeaderboardLocation(): string {
  const fromEnvironment = process.env[LEADERBOARD_ENV_VARIABLE];
  return fromEnvironment !== undefined && fromEnvironment.trim() !== '' ? fromEnvironment : DEFAULT_LEADERBOARD_PATH;
}

export async function openLeaderboard(location: string, options: OpenOptions): Promise<LeaderboardStore> {
  if (location.trim() === '') throw new InputError('expected a leaderboard path or postgres:// URL, got an empty string', { field: '--db' });
  if (!isPostgresLocation(location)) return openSqliteLeaderboard(location, options);
  // A server that is starting (or a network blip) is tried again, for a few seconds in all; one
  // that is not there is said within them, before the command has done any work.
  return withConnectRetries({
    attempt: () => openPostgresLeaderboard(location, options),
    transient: (error) => error instanceof StoreUnreachableError,
    timedOut: (seconds) => new StoreUnreachableError(withoutPassword(location), `no answer in ${seconds} s`),
    discard: (store) => store.close(),
  });
}

/** Opens, hands the store to `work`, and closes it whatever happens. */
export async function withLeaderboard<T>(location: string, options: OpenOptions, work: (store: LeaderboardStore) => Promise<T> | T): Promise<T> {
  const store = await openLeaderboard(location, options);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/**
 * Records one run and its per-example scores in one transaction, after validating both.
 * This is what `vlbench run`, `vlbench leaderboard add`, sweep workers and `leaderboard copy` call.
 * A draft with an `id` and `createdAt` keeps them (a sweep's run key, a copied run).
 */
export async function recordRun(store: LeaderboardStore, draft: RunRecordDraft, perExample: readonly ExampleScore[] | null): Promise<RunRecord> {
  const createdAt = draft.createdAt ?? new Date().toISOString();
  const record = parseRunRecord(
    { ...draft, recordVersion: RUN_RECORD_VERSION, createdAt, id: draft.id ?? newRunId(createdAt, draft) },
    `run record "${draft.name}"`,
  );
  if (perExample) checkPerExample(record, perExample);
  await store.insertRun(record, perExample);
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
    if (entry.image !== undefined && (typeof entry.image !== 'string' || entry.image === '')) {
      throw new InputError(`expected the image as a non-empty string, got ${JSON.stringify(entry.image)}`, { file: where, record: entry.id, field: 'image' });
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

// CAST(... AS INTEGER): PostgreSQL's COUNT is a bigint, which its driver hands over as a string.
const STORED_RUN_COLUMNS = 'r.record_json AS json, (SELECT CAST(COUNT(*) AS INTEGER) FROM example_scores s WHERE s.run_seq = r.seq) AS "exampleCount"';

/** All runs, oldest first (the order they were recorded in). */
export async function listRuns(store: LeaderboardStore, filter: RunFilter = {}): Promise<StoredRun[]> {
  const rows = await store.query<{ json: string; exampleCount: number }>(
    `SELECT ${STORED_RUN_COLUMNS} FROM runs r ${filter.task !== undefined ? 'WHERE r.task = ?' : ''} ORDER BY r.seq`,
    filter.task !== undefined ? [filter.task] : [],
  );
  return rows.map((row) => ({ record: readStoredRecord(store, row.json), exampleCount: row.exampleCount }));
}

function readStoredRecord(store: LeaderboardStore, json: string): RunRecord {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new InputError('a stored run record is not valid JSON (the database was edited by hand?)', { file: store.location });
  }
  return parseRunRecord(value, store.location);
}

/**
 * Finds a run by id, or else by name. A name recorded more than once means its most recent
 * run (a CI pipeline records "main" on every merge and gates against the latest); the
 * caller is told which one through `matchedByName`.
 */
export async function findRun(store: LeaderboardStore, idOrName: string, filter: RunFilter = {}): Promise<{ run: StoredRun; matchedByName: number }> {
  const taskClause = filter.task !== undefined ? 'AND task = ?' : '';
  const parameters = filter.task !== undefined ? [idOrName, filter.task] : [idOrName];
  const byId = await store.query<{ seq: unknown }>(`SELECT seq FROM runs WHERE id = ? ${taskClause}`, parameters);
  const seqs = byId.length > 0 ? [byId[0].seq] : (await store.query<{ seq: unknown }>(`SELECT seq FROM runs WHERE name = ? ${taskClause} ORDER BY created_at DESC, seq DESC`, parameters)).map((row) => row.seq);
  if (seqs.length === 0) throw new InputError(`no run with this id or name${filter.task !== undefined ? ` for task ${JSON.stringify(filter.task)}` : ''}`, { file: store.location, record: idOrName });
  const [row] = await store.query<{ json: string; exampleCount: number }>(`SELECT ${STORED_RUN_COLUMNS} FROM runs r WHERE r.seq = ?`, [seqs[0]]);
  return { run: { record: readStoredRecord(store, row.json), exampleCount: row.exampleCount }, matchedByName: byId.length > 0 ? 0 : seqs.length };
}

/** Which of these run ids are recorded (a sweep asks before it runs, `leaderboard copy` before it copies). */
export async function recordedRunIds(store: LeaderboardStore, runIds: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  // In slices: SQLite allows at most 32,766 parameters per statement.
  for (let start = 0; start < runIds.length; start += 500) {
    const slice = runIds.slice(start, start + 500);
    if (slice.length === 0) continue;
    const rows = await store.query<{ id: string }>(`SELECT id FROM runs WHERE id IN (${slice.map(() => '?').join(', ')})`, slice);
    for (const row of rows) found.add(row.id);
  }
  return found;
}

/**
 * Ids of the runs whose id starts with `prefix` (a sweep's run key names all the records of
 * one run, one per evaluation split). A range, not LIKE: "_" in a prefix would be a wildcard.
 */
export async function recordedRunIdsWithPrefix(store: LeaderboardStore, prefix: string): Promise<string[]> {
  if (prefix === '') throw new InputError('expected a non-empty run id prefix');
  const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const rows = await store.query<{ id: string }>('SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id', [prefix, upper]);
  return rows.map((row) => row.id);
}

/** The run's per-example scores, in example id order (byte order, the same on both engines), with their image where recorded. */
export async function exampleScores(store: LeaderboardStore, runId: string): Promise<ExampleScore[]> {
  const rows = await store.query<{ id: string; score: number; image: string | null }>(
    'SELECT s.example_id AS id, s.score AS score, s.image_id AS image FROM example_scores s JOIN runs r ON r.seq = s.run_seq WHERE r.id = ? ORDER BY s.example_id',
    [runId],
  );
  return rows.map(({ id, score, image }) => (image === null ? { id, score } : { id, score, image }));
}
