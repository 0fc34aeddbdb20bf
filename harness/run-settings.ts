import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import { choiceSetting, documentSettings, integerSetting, numberSetting, parseGivenSettings, type SettingFields, type SettingRow } from '../core/settings.ts';
import { ENCODER_TUNING_DEFAULTS, type EncoderTuningSettings } from '../models/fine-tuning/encoder-tuning.ts';
import { FUSION_DEFAULTS } from '../models/heads/fusion.ts';
import { describeObjectiveSettings } from '../models/objectives/index.ts';
import { TRAINING_RECIPE_DEFAULTS, TRAINING_SETTING_FIELDS, type TrainingRecipe } from '../models/train.ts';

/**
 * Every `--set` key of a run that is not an objective's: the training loop's (declared in
 * models/train.ts beside its defaults), and here the fusion's, encoder tuning's, the head refit's
 * and the answer vocabulary's, each with its default, schema and one line of doc. `--help` and
 * docs/cli.md's settings table are generated from these declarations and the objectives'
 * (`describeSettings`); a test checks that every key listed there round-trips through `--set`.
 *
 * "auto" defaults are resolved against the task where the run is planned (harness/run-plan.ts
 * resolveFusion): the task's own where it sets one, else the shared default.
 */

type Switch = 'auto' | 'true' | 'false';

export interface FusionRecipe {
  'fusion.kind': 'auto' | 'relational' | 'transformer';
  'fusion.hidden': number;
  'fusion.layers': number;
  'fusion.heads': number;
  'fusion.image_pool': number;
  'fusion.input_norm': Switch;
  'fusion.tag_context': Switch;
  'fusion.tag_product': Switch;
  'fusion.box_sine': Switch;
  'fusion.shared_prefix': Switch;
  'fusion.region_features': 'auto' | 'crop' | 'pool';
  'fusion.dropout': 'auto' | number;
}

export interface EncoderRecipe {
  'encoder.train_blocks': EncoderTuningSettings['trainBlocks'];
  'encoder.towers': EncoderTuningSettings['towers'];
  'encoder.lr_scale': number;
}

export interface HeadRecipe {
  'head.refit_epochs': number;
  'answers.min_count': number | 'auto';
}

/** Every run setting, by its `--set` key. */
export type RunSettings = TrainingRecipe & FusionRecipe & EncoderRecipe & HeadRecipe;
/** The run settings a request gave; the others take the task's default, then the shared one. */
export type Recipe = Partial<RunSettings>;

const switchSetting = () => ({ schema: choiceSetting(['auto', 'true', 'false'] as const), expects: 'auto, true or false' });

const FUSION_SETTING_FIELDS: SettingFields<FusionRecipe> = {
  'fusion.kind': { schema: choiceSetting(['auto', 'relational', 'transformer'] as const), expects: 'auto, relational or transformer', doc: "the fusion over image and text tokens; auto: the task's own (VQA, GQA: relational, with object tokens, counts and pairs; VCR, retrieval: transformer)" },
  'fusion.hidden': { schema: integerSetting(1), expects: 'a whole number ≥ 1', doc: "width of the fusion (the task may set its own)" },
  'fusion.layers': { schema: integerSetting(0), expects: 'a whole number ≥ 0', doc: 'transformer layers of the fusion (the task may set its own)' },
  'fusion.heads': { schema: integerSetting(1), expects: 'a whole number ≥ 1', doc: 'attention heads of the fusion (the task may set its own)' },
  'fusion.image_pool': { schema: integerSetting(1), expects: 'a whole number ≥ 1', doc: 'pooling factor of the patch grid before the fusion (1 where the default does not divide the grid)' },
  'fusion.input_norm': { ...switchSetting(), doc: "layer norms on the fusion's inputs; auto: on, frozen or tuned alike (false: off, as frozen runs had before)" },
  'fusion.tag_context': { ...switchSetting(), doc: "grounded text (VCR's tags): each word also carries the detections named just before and after it; auto: the task's own (VCR: on)" },
  'fusion.tag_product': { ...switchSetting(), doc: "grounded text: a detection's product with each word that names it (bilinear); auto: the task's own" },
  'fusion.box_sine': { ...switchSetting(), doc: "grounded text: sine features of each box's centre and size wherever its geometry enters; auto: the task's own" },
  'fusion.shared_prefix': { ...switchSetting(), doc: "multiple choice: the image and question pass the fusion once per item and do not attend to the choices, which attend to them; auto: the task's own (VCR: on)" },
  'fusion.region_features': { schema: choiceSetting(['auto', 'crop', 'pool'] as const), expects: 'auto, crop or pool', doc: 'with --regions: crop (each box through the frozen image encoder, cached) or pool (the patch tokens inside the box); auto: crop' },
  'fusion.dropout': { schema: z.union([z.literal('auto'), numberSetting((n) => n.min(0).max(0.9))]), expects: 'auto or a number from 0 to 0.9', doc: "dropout inside the relational fusion while training; auto: the task's own (VQA, GQA: 0.1)" },
};

const FUSION_RECIPE_DEFAULTS: FusionRecipe = {
  'fusion.kind': 'auto',
  'fusion.hidden': FUSION_DEFAULTS.hidden,
  'fusion.layers': FUSION_DEFAULTS.layers,
  'fusion.heads': FUSION_DEFAULTS.heads,
  'fusion.image_pool': FUSION_DEFAULTS.imagePool,
  'fusion.input_norm': 'auto',
  'fusion.tag_context': 'auto',
  'fusion.tag_product': 'auto',
  'fusion.box_sine': 'auto',
  'fusion.shared_prefix': 'auto',
  'fusion.region_features': 'auto',
  'fusion.dropout': 'auto',
};

const ENCODER_SETTING_FIELDS: SettingFields<EncoderRecipe> = {
  'encoder.train_blocks': {
    schema: z
      .string()
      .regex(/^(all|\d+)$/)
      .transform((v) => (v === 'all' ? ('all' as const) : Number(v))),
    expects: 'a whole number of blocks or all',
    doc: "the encoder's last N transformer blocks of each trained tower train with the heads; 0: frozen, its features cached",
  },
  'encoder.towers': { schema: choiceSetting(['both', 'vision', 'text'] as const), expects: 'both, vision or text', doc: 'which towers train when encoder.train_blocks > 0' },
  'encoder.lr_scale': { schema: numberSetting((n) => n.positive()), expects: 'a number > 0', doc: "multiplies the learning rate of the encoder's variables" },
};

const ENCODER_RECIPE_DEFAULTS: EncoderRecipe = {
  'encoder.train_blocks': ENCODER_TUNING_DEFAULTS.trainBlocks,
  'encoder.towers': ENCODER_TUNING_DEFAULTS.towers,
  'encoder.lr_scale': ENCODER_TUNING_DEFAULTS.lrScale,
};

const HEAD_SETTING_FIELDS: SettingFields<HeadRecipe> = {
  'head.refit_epochs': { schema: integerSetting(0), expects: 'a whole number ≥ 0', doc: 'epochs of a new head trained on the encoder this run fine-tuned, frozen, after its training; 0: none' },
  'answers.min_count': { schema: z.union([z.literal('auto'), integerSetting(1)]), expects: 'auto or a whole number ≥ 1', doc: 'VQA, GQA: answers seen fewer times in training are left out of the answer vocabulary; auto: 9 from 50k training questions (the VQA v2 recipe), else 1' },
};

const HEAD_RECIPE_DEFAULTS: HeadRecipe = { 'head.refit_epochs': 0, 'answers.min_count': 'auto' };

export const RUN_SETTING_FIELDS: SettingFields<RunSettings> = { ...TRAINING_SETTING_FIELDS, ...FUSION_SETTING_FIELDS, ...ENCODER_SETTING_FIELDS, ...HEAD_SETTING_FIELDS };
export const RUN_SETTING_DEFAULTS: RunSettings = { ...TRAINING_RECIPE_DEFAULTS, ...FUSION_RECIPE_DEFAULTS, ...ENCODER_RECIPE_DEFAULTS, ...HEAD_RECIPE_DEFAULTS };

/** The run settings among a request's `--set` keys (those no objective took); an unknown key is refused with the known ones. */
export function parseRunSettings(settings: Readonly<Record<string, string>>): Recipe {
  return parseGivenSettings(RUN_SETTING_FIELDS, settings, (key) => new InputError(`unknown --set key "${key}"; run settings are ${Object.keys(RUN_SETTING_FIELDS).join(', ')}, objective settings are <objective>.<key> (see vlbench run --help)`));
}

/** Every `--set` key a run takes, run settings first, then objectives' and task losses' (`<objective>.<key>`). */
export function describeSettings(): SettingRow[] {
  return [...documentSettings(RUN_SETTING_FIELDS, RUN_SETTING_DEFAULTS), ...describeObjectiveSettings()];
}

/** The settings as a Markdown table (docs/cli.md holds it between its settings markers; a test keeps the two equal). */
export function settingsTable(rows: readonly SettingRow[] = describeSettings()): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  return ['| key | default | expects | what it does |', '| --- | --- | --- | --- |', ...rows.map((row) => `| \`${row.key}\` | \`${JSON.stringify(row.default)}\` | ${cell(row.expects ?? '')} | ${cell(row.doc)} |`)].join('\n');
}

/** The page that holds the settings table, relative to the repository root. */
export const SETTINGS_DOC = 'docs/cli.md';
const TABLE_START = '<!-- settings table: generated by scripts/write-settings-table.ts; do not edit -->';
const TABLE_END = '<!-- end of settings table -->';

/** `page` with the text between its settings markers replaced by the current table; a page without the markers is refused, naming `file`. */
export function withSettingsTable(page: string, file: string): string {
  const start = page.indexOf(TABLE_START);
  const end = page.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new InputError(`expected the settings table's markers (${TABLE_START} … ${TABLE_END})`, { file });
  return `${page.slice(0, start + TABLE_START.length)}\n${settingsTable()}\n${page.slice(end)}`;
}
