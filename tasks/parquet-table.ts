import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { InputError } from '../core/errors.ts';

/**
 * One parquet file, read a row group at a time (a split of 200k questions never sits in memory
 * as one table) by hyparquet, with the codecs the Hub's files use (snappy, zstd, gzip, brotli,
 * lz4) from hyparquet-compressors. Every error names the file, and where it is known the row
 * group, the row (counted from the file's first row) and the column: `InputError`'s record is
 * "row group G, row R".
 */
export interface ParquetRowGroup {
  index: number;
  /** The file row of the group's first row. */
  firstRow: number;
  rows: number;
}

export class ParquetTable {
  readonly file: string;
  readonly rowCount: number;
  readonly rowGroups: readonly ParquetRowGroup[];
  /** The top-level columns, in schema order. */
  readonly columns: readonly string[];
  private readonly buffer: AsyncBuffer;
  private readonly metadata: FileMetaData;

  private constructor(file: string, buffer: AsyncBuffer, metadata: FileMetaData) {
    this.file = file;
    this.buffer = buffer;
    this.metadata = metadata;
    this.rowCount = Number(metadata.num_rows);
    let firstRow = 0;
    this.rowGroups = metadata.row_groups.map((group, index) => {
      const rows = Number(group.num_rows);
      const entry = { index, firstRow, rows };
      firstRow += rows;
      return entry;
    });
    this.columns = parquetSchema(metadata).children.map((child) => child.element.name);
  }

  static async open(file: string): Promise<ParquetTable> {
    let buffer: AsyncBuffer;
    try {
      buffer = await asyncBufferFromFile(file);
    } catch (error) {
      throw new InputError(`cannot read the parquet file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
    }
    try {
      return new ParquetTable(file, buffer, await parquetMetadataAsync(buffer));
    } catch (error) {
      // A truncated file has lost its footer, where the schema and row groups are.
      throw new InputError(`not a readable parquet file (truncated or damaged: ${firstLine(error)})`, { file });
    }
  }

  /** Refuses a file that lacks one of `names`, naming the first missing column and the columns there are. */
  requireColumns(names: readonly string[]): void {
    const missing = names.filter((name) => !this.columns.includes(name));
    if (missing.length > 0) {
      throw new InputError(`missing column${missing.length > 1 ? 's' : ''} ${missing.map((name) => `"${name}"`).join(', ')}; the file has ${this.columns.map((name) => `"${name}"`).join(', ')}`, { file: this.file, field: missing[0] });
    }
  }

  /**
   * The rows of one row group, as objects of `columns`. `utf8: false` keeps byte arrays that
   * are not marked as text as bytes (embedded images); text columns are strings either way.
   */
  async readRowGroup(group: ParquetRowGroup, columns: readonly string[], options: { utf8?: boolean } = {}): Promise<Record<string, unknown>[]> {
    return this.read(group, group.firstRow, group.firstRow + group.rows, columns, options);
  }

  private async read(group: ParquetRowGroup, rowStart: number, rowEnd: number, columns: readonly string[], options: { utf8?: boolean }): Promise<Record<string, unknown>[]> {
    const columnList = [...columns];
    try {
      return await parquetReadObjects({ file: this.buffer, metadata: this.metadata, columns: columnList, rowStart, rowEnd, compressors, utf8: options.utf8 ?? true });
    } catch (error) {
      throw new InputError(`cannot decode column ${await this.damagedColumn(rowStart, rowEnd, columnList, options)}: ${firstLine(error)}`, {
        file: this.file,
        record: `row group ${group.index}, rows ${rowStart}–${rowEnd - 1}`,
      });
    }
  }

  /** Which of `columns` fails to decode alone (quoted), or all of them when none does: read again one column at a time, only once reading has failed. */
  private async damagedColumn(rowStart: number, rowEnd: number, columns: string[], options: { utf8?: boolean }): Promise<string> {
    for (const column of columns) {
      try {
        await parquetReadObjects({ file: this.buffer, metadata: this.metadata, columns: [column], rowStart, rowEnd, compressors, utf8: options.utf8 ?? true });
      } catch {
        return `"${column}"`;
      }
    }
    return columns.map((column) => `"${column}"`).join(', ');
  }
}

/** The `record` of an InputError about one row. */
export function parquetRowRecord(group: ParquetRowGroup, row: number): string {
  return `row group ${group.index}, row ${row}`;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}

/** A cell's value as an error message shows it: short, typed, never the whole image's bytes. */
export function describeCell(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'bigint') return `int64 ${value}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'object') return 'a struct';
  return `${typeof value} ${String(value)}`;
}
