/**
 * Errors a user can act on. The CLI prints these as one line and exits non-zero;
 * anything else is a bug in vlbench and is reported as such.
 */
export interface InputLocation {
  /** The file (or folder, or command-line option) that holds the bad input. */
  file?: string;
  /** The record inside it: an id, an index, a line number. */
  record?: string | number;
  /** The field of that record. */
  field?: string;
}

export class InputError extends Error {
  readonly location: InputLocation;
  constructor(message: string, location: InputLocation = {}) {
    super(formatLocated(message, location));
    this.name = 'InputError';
    this.location = location;
  }
}

function formatLocated(message: string, { file, record, field }: InputLocation): string {
  const where: string[] = [];
  if (file !== undefined) where.push(file);
  if (record !== undefined) where.push(`record ${JSON.stringify(record)}`);
  if (field !== undefined) where.push(`field "${field}"`);
  return where.length ? `${where.join(', ')}: ${message}` : message;
}

/** Builds the usual "expected X, got Y" error for one field of one record. */
export function fieldError(file: string, record: string | number | undefined, field: string, expected: string, got: unknown): InputError {
  return new InputError(`expected ${expected}, got ${describeValue(got)}`, { file, record, field });
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (field missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Summarises a list of bad ids: how many, and the first few, so a user can find them. */
export function listSome(ids: readonly (string | number)[], shown = 5): string {
  const head = ids.slice(0, shown).map((id) => JSON.stringify(id)).join(', ');
  return ids.length > shown ? `${ids.length} (first ${shown}: ${head})` : `${ids.length} (${head})`;
}
