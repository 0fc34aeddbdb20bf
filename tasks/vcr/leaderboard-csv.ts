import { readFile, writeFile } from 'node:fs/promises';
import { stringify } from 'csv-stringify/sync';
import { InputError, listSome } from '../../core/errors.ts';
import { VCR_CHOICES } from './load.ts';
import type { VcrPredictions, VcrProbabilities } from './score.ts';

/**
 * The VCR leaderboard CSV (rowanz/r2c models/eval_for_leaderboard.py writes it with pandas, the id
 * as index): `annot_id`, then answer_0..3, then rationale_conditioned_on_a<a>_0..3 for a = 0..3.
 */
export const VCR_CSV_PROBABILITY_COLUMNS: readonly string[] = [
  ...range(VCR_CHOICES).map((i) => `answer_${i}`),
  ...range(VCR_CHOICES).flatMap((a) => range(VCR_CHOICES).map((r) => `rationale_conditioned_on_a${a}_${r}`)),
];
export const VCR_CSV_COLUMNS: readonly string[] = ['annot_id', ...VCR_CSV_PROBABILITY_COLUMNS];

/**
 * Reads a leaderboard CSV into predictions by annot_id. Columns are matched by header name, so a
 * file with the 21 columns in another order reads the same. The file is plain numbers and ids, so
 * a small RFC 4180 line splitter is enough (csv-parse is not a dependency); quoted fields are
 * understood, quoted line breaks are not (an annot_id never holds one).
 */
export async function readVcrLeaderboardCsv(file: string): Promise<VcrPredictions> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'predictions file not found' : `cannot read (${(error as Error).message})`, { file });
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new InputError('empty file: expected a header line with annot_id and the 20 probability columns', { file });

  const header = splitCsvLine(lines[0], file, 1);
  const duplicated = header.filter((name, i) => header.indexOf(name) !== i);
  const missingColumns = VCR_CSV_COLUMNS.filter((name) => !header.includes(name));
  const unknownColumns = header.filter((name) => !VCR_CSV_COLUMNS.includes(name));
  if (duplicated.length || missingColumns.length || unknownColumns.length || header.length !== VCR_CSV_COLUMNS.length) {
    const problems = [
      missingColumns.length ? `missing columns ${listSome(missingColumns)}` : '',
      unknownColumns.length ? `unknown columns ${listSome(unknownColumns)}` : '',
      duplicated.length ? `repeated columns ${listSome(duplicated)}` : '',
    ].filter(Boolean);
    throw new InputError(`expected the ${VCR_CSV_COLUMNS.length} leaderboard columns (annot_id, answer_0..3, rationale_conditioned_on_a0_0..a3_3), got ${header.length}${problems.length ? `: ${problems.join('; ')}` : ''}`, {
      file, record: 'line 1',
    });
  }
  const idColumn = header.indexOf('annot_id');
  const columnOf = VCR_CSV_PROBABILITY_COLUMNS.map((name) => header.indexOf(name));

  const predictions: VcrPredictions = new Map();
  const lineOfId = new Map<string, number>();
  const repeated: string[] = [];
  for (let index = 1; index < lines.length; index++) {
    const line = index + 1;
    const fields = splitCsvLine(lines[index], file, line);
    if (fields.length !== header.length) {
      throw new InputError(`expected ${header.length} fields, got ${fields.length}`, { file, record: `line ${line}` });
    }
    const id = fields[idColumn];
    if (id === '') throw new InputError('empty annot_id', { file, record: `line ${line}`, field: 'annot_id' });
    const values = columnOf.map((column, k) => {
      const raw = fields[column].trim();
      // Number('') is 0 and Number('nan') is NaN: refuse both rather than score a made-up value.
      const value = raw === '' ? NaN : Number(raw);
      if (!Number.isFinite(value)) {
        throw new InputError(`expected a finite number, got ${JSON.stringify(fields[column])}`, { file, record: `line ${line} (${id})`, field: VCR_CSV_PROBABILITY_COLUMNS[k] });
      }
      return value;
    });
    if (lineOfId.has(id)) {
      repeated.push(id);
      continue;
    }
    lineOfId.set(id, line);
    predictions.set(id, probabilitiesFromRow(values));
  }
  if (repeated.length) throw new InputError(`annot_ids that appear more than once: ${listSome([...new Set(repeated)])}`, { file });
  return predictions;
}

/** Writes predictions in split order, the way the leaderboard expects them. */
export async function writeVcrLeaderboardCsv(file: string, ids: readonly string[], predictions: VcrPredictions): Promise<void> {
  const rows = ids.map((id) => {
    const prediction = predictions.get(id);
    if (!prediction) throw new InputError(`no prediction for annot_id ${JSON.stringify(id)}`, { file });
    return [id, ...prediction.answer, ...prediction.rationaleGivenAnswer.flat()];
  });
  // String(number) is the shortest text that reads back to the same double.
  const text = stringify(rows, { header: true, columns: [...VCR_CSV_COLUMNS], cast: { number: (value) => String(value) } });
  await writeFile(file, text);
}

function probabilitiesFromRow(values: number[]): VcrProbabilities {
  return {
    answer: values.slice(0, VCR_CHOICES),
    rationaleGivenAnswer: range(VCR_CHOICES).map((a) => values.slice(VCR_CHOICES * (a + 1), VCR_CHOICES * (a + 2))),
  };
}

function splitCsvLine(line: string, file: string, lineNumber: number): string[] {
  const fields: string[] = [];
  let position = 0;
  for (;;) {
    let field = '';
    if (line[position] === '"') {
      position++;
      for (;;) {
        const close = line.indexOf('"', position);
        if (close < 0) throw new InputError('unterminated quoted field', { file, record: `line ${lineNumber}` });
        field += line.slice(position, close);
        position = close + 1;
        if (line[position] === '"') {
          field += '"';
          position++;
        } else break;
      }
      if (position < line.length && line[position] !== ',') {
        throw new InputError('text after a closing quote', { file, record: `line ${lineNumber}` });
      }
    } else {
      const comma = line.indexOf(',', position);
      field = line.slice(position, comma < 0 ? line.length : comma);
      position = comma < 0 ? line.length : comma;
    }
    fields.push(field);
    if (position >= line.length) return fields;
    position++; // the comma
    if (position === line.length) {
      fields.push('');
      return fields;
    }
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
