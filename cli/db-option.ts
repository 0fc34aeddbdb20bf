import { Option } from 'commander';
import { DEFAULT_LEADERBOARD_PATH, LEADERBOARD_ENV_VARIABLE } from '../leaderboard/store.ts';

/**
 * `--db` as every command that reads or records runs takes it: a SQLite path or a
 * postgres:// URL, defaulting to $VLBENCH_DB, then runs/leaderboard.db. One definition, so the
 * help text and the environment variable cannot drift apart between commands.
 */
export function leaderboardDbOption(description = 'leaderboard: a SQLite file path or a postgres://USER@HOST:PORT/DB URL'): Option {
  return new Option('--db <location>', description).env(LEADERBOARD_ENV_VARIABLE).default(DEFAULT_LEADERBOARD_PATH);
}
