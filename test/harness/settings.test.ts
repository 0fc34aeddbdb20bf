import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseMethodSpec } from '../../models/objectives/index.ts';
import { describeSettings, parseRunSettings, RUN_SETTING_FIELDS, SETTINGS_DOC, withSettingsTable } from '../../harness/run-settings.ts';
import { resolveRun } from '../../harness/run-plan.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';

const root = new URL('../../', import.meta.url).pathname;

/** A documented default as a user would type it after `--set key=`. */
function typed(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

/** The value `--set key=text` gives the run, through the same parsing `vlbench run` does. */
function parsedSetting(key: string, text: string): unknown {
  const prefix = key.includes('.') ? key.slice(0, key.indexOf('.')) : '';
  const auxiliary = ['sg', 'adv', 'mmd', 'dann'].includes(prefix);
  const method = parseMethodSpec(auxiliary ? `ft+${prefix}` : 'ft', { [key]: text });
  if (auxiliary) return (method.objectives.find((o) => o.name === prefix)!.settings as unknown as Record<string, unknown>)[key.slice(prefix.length + 1)];
  if (prefix in method.taskLoss) return (method.taskLoss as unknown as Record<string, Record<string, unknown>>)[prefix][key.slice(prefix.length + 1)];
  return (parseRunSettings(method.otherSettings) as Record<string, unknown>)[key];
}

test('every documented --set key round-trips: its documented default, typed back, is the default', (t) => {
  const rows = describeSettings();
  t.true(rows.length > 40, `${rows.length} settings documented`);
  for (const row of rows) t.deepEqual(parsedSetting(row.key, typed(row.default)), row.default, row.key);
});

test('run --help lists every setting with its default and doc, generated from the declarations', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', join(root, 'cli/main.ts'), 'run', '--help'], { cwd: root });
  for (const row of describeSettings()) t.regex(stdout, new RegExp(`\\n  ${row.key.replace(/\./g, '\\.')} +${JSON.stringify(row.default).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +${row.doc.slice(0, 30).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), row.key);
});

test(`${SETTINGS_DOC}'s settings table is the one the declarations generate (npx tsx scripts/write-settings-table.ts rewrites it)`, async (t) => {
  const page = await readFile(join(root, SETTINGS_DOC), 'utf8');
  t.is(page, withSettingsTable(page, SETTINGS_DOC));
  t.throws(() => withSettingsTable('# no table here\n', 'x.md'), { message: /x\.md: expected the settings table's markers/ });
});

test('unknown keys and bad values are refused by name, listing the keys there are', (t) => {
  t.throws(() => parseRunSettings({ learning_rate: '0.1' }), { message: /unknown --set key "learning_rate"; run settings are lr, batch, .*schedule, max_grad_norm/ });
  t.throws(() => parseRunSettings({ schedule: 'step' }), { message: /field "--set schedule": expected cosine, linear or constant, got "step"/ });
  t.throws(() => parseRunSettings({ 'fusion.dropout': '0.95' }), { message: /--set fusion\.dropout.*expected auto or a number from 0 to 0\.9/ });
  t.throws(() => parseRunSettings({ 'encoder.train_blocks': 'two' }), { message: /--set encoder\.train_blocks.*expected a whole number of blocks or all/ });
  t.throws(() => parseRunSettings({ lr: '' }), { message: /--set lr.*expected a number > 0/ });
  t.deepEqual(Object.keys(parseRunSettings({ lr: '0.01' })), ['lr'], 'keys not given stay unset: the task default may fill them');
});

test('schedule and max_grad_norm reach the training loop; unset, the task and the loop decide', async (t) => {
  t.truthy(RUN_SETTING_FIELDS.schedule && RUN_SETTING_FIELDS.max_grad_norm);
  const data = join(await mkdtemp(join(tmpdir(), 'vlbench-settings-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 6, seed: 1, size: 32 });
  const plan = await resolveRun({ task: 'vcr', dataDir: data, method: 'ft', sets: { schedule: 'linear', max_grad_norm: '0', lr: '0.02' } });
  t.like(plan.training, { schedule: 'linear', maxGradNorm: 0, learningRate: 0.02 });
  // VCR sets its own epochs and fusion; the loop's own schedule and clipping stay when not given.
  const defaults = await resolveRun({ task: 'vcr', dataDir: data, method: 'ft' });
  t.like(defaults.training, { schedule: 'cosine', maxGradNorm: 1, epochs: 16 });
});
