// Regenerates leaderboard/run-record.schema.json from the zod schema:
//   npx tsx leaderboard/write-run-record-schema.ts
// A test fails when the committed file and the schema drift apart.
import { writeFileSync } from 'node:fs';
import { runRecordJsonSchema } from './run-record.ts';

export const RUN_RECORD_SCHEMA_FILE = new URL('./run-record.schema.json', import.meta.url);

export function runRecordSchemaText(): string {
  return JSON.stringify(runRecordJsonSchema(), null, 2) + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(RUN_RECORD_SCHEMA_FILE, runRecordSchemaText());
  process.stdout.write(`wrote ${RUN_RECORD_SCHEMA_FILE.pathname}\n`);
}
