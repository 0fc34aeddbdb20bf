// Rewrites the settings table in docs/cli.md from the declarations (harness/run-settings.ts and the
// objectives'): `npx tsx scripts/write-settings-table.ts`. test/harness/settings.test.ts fails while
// the file and the declarations differ.
import { readFile, writeFile } from 'node:fs/promises';
import { SETTINGS_DOC, withSettingsTable } from '../harness/run-settings.ts';

const file = new URL(`../${SETTINGS_DOC}`, import.meta.url);
await writeFile(file, withSettingsTable(await readFile(file, 'utf8'), SETTINGS_DOC));
process.stdout.write(`${SETTINGS_DOC}: settings table written\n`);
