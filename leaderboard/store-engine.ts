import { InputError } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import type { RunRecord } from './run-record.ts';

/**
 * What an engine of the leaderboard store provides (sqlite-store.ts, postgres-store.ts). The
 * queries on top of it, and the validation before every insert, live once in store.ts.
 */
export interface LeaderboardStore {
  /** Shown in messages: the path, or the PostgreSQL URL without its password. */
  readonly location: string;
  readonly engine: 'sqlite' | 'postgres';
  /**
   * Inserts an already validated record and its per-example scores in one transaction;
   * throws RunAlreadyRecordedError when a run with its id is there (and inserts nothing).
   */
  insertRun(record: RunRecord, perExample: readonly ExampleScore[] | null): Promise<void>;
  /** Rows of one read query, `?` placeholders, written in the SQL both engines speak. */
  query<Row>(sql: string, parameters?: readonly unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Create the leaderboard when there is none (commands that record runs); readers refuse a missing one. */
  create: boolean;
}

/** A run with this id is already in the store: recording it again would count it twice. */
export class RunAlreadyRecordedError extends InputError {
  readonly runId: string;
  constructor(location: string, runId: string) {
    super('a run with this id is already recorded', { file: location, record: runId, field: 'id' });
    this.name = 'RunAlreadyRecordedError';
    this.runId = runId;
  }
}

/**
 * The store could not be reached (server down, wrong host, refused login). Separate from other
 * input errors because the condition may pass: a sweep worker retries the job later instead of
 * calling it bad input.
 */
export class StoreUnreachableError extends InputError {
  constructor(location: string, reason: string) {
    super(`cannot reach the leaderboard database: ${reason}`, { file: location });
    this.name = 'StoreUnreachableError';
  }
}

