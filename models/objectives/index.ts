import { InputError } from '../../core/errors.ts';
import { documentSettings } from './settings.ts';
import { ADVERSARIAL_DEFAULTS, ADVERSARIAL_SETTING_FIELDS, parseAdversarialSettings, type AdversarialSettings } from './adversarial.ts';
import { DANN_DEFAULTS, DANN_SETTING_FIELDS, parseDannSettings, type DannSettings } from './dann.ts';
import { INFO_NCE_DEFAULTS, INFO_NCE_SETTING_FIELDS, parseInfoNceSettings, type InfoNceSettings } from './info-nce.ts';
import { MMD_DEFAULTS, MMD_SETTING_FIELDS, parseMmdSettings, type MmdSettings } from './mmd.ts';
import { MULTIPLE_CHOICE_DEFAULTS, MULTIPLE_CHOICE_SETTING_FIELDS, parseMultipleChoiceSettings, type MultipleChoiceSettings } from './multiple-choice-ce.ts';
import { SCENE_GRAPH_DEFAULTS, SCENE_GRAPH_SETTING_FIELDS, parseSceneGraphSettings, type SceneGraphSettings } from './scene-graph.ts';
import { SOFT_SCORE_BCE_DEFAULTS, SOFT_SCORE_BCE_SETTING_FIELDS, parseSoftScoreBceSettings, type SoftScoreBceSettings } from './soft-score-bce.ts';

/**
 * A method SPEC names a base and the auxiliary objectives added to it, joined by "+":
 * `zeroshot`, `ft`, `ft+sg`, `ft+sg+adv+dann`, … The base decides whether anything trains
 * (`zeroshot` does not, so it takes no objectives); the task decides the task loss
 * (soft-score BCE for VQA/GQA, multiple-choice CE for VCR, InfoNCE for retrieval).
 *
 * Settings come as `--set <prefix>.<key>=<value>` with the objective's name as prefix
 * (`sg.lambda`, `adv.eta`, `mmd.weight`, `dann.gamma`) or the task loss's (`infonce.…`,
 * `bce.…`, `mc.…`). A setting for an objective the SPEC does not name is refused: it would
 * otherwise be silently ignored. Keys with any other prefix (or none) are returned untouched
 * in `otherSettings` for the training loop, which must refuse the ones it does not know.
 *
 * The canonical SPEC lists the objectives in a fixed order (base, sg, adv, mmd, dann), so
 * `ft+adv+sg` and `ft+sg+adv` are recorded as the same method.
 */
export const BASE_METHODS = ['ft', 'zeroshot'] as const;
export const AUXILIARY_OBJECTIVES = ['sg', 'adv', 'mmd', 'dann'] as const;
export const TASK_LOSSES = ['infonce', 'bce', 'mc'] as const;

export type BaseMethod = (typeof BASE_METHODS)[number];
export type AuxiliaryObjectiveName = (typeof AUXILIARY_OBJECTIVES)[number];

export type AuxiliaryObjective =
  | { name: 'sg'; settings: SceneGraphSettings }
  | { name: 'adv'; settings: AdversarialSettings }
  | { name: 'mmd'; settings: MmdSettings }
  | { name: 'dann'; settings: DannSettings };

export interface TaskLossSettings {
  infonce: InfoNceSettings;
  bce: SoftScoreBceSettings;
  mc: MultipleChoiceSettings;
}

export interface MethodSpec {
  /** Canonical form, e.g. "ft+sg+adv+dann". */
  spec: string;
  base: BaseMethod;
  /** In canonical order. */
  objectives: AuxiliaryObjective[];
  taskLoss: TaskLossSettings;
  /** `--set` keys that belong to no objective, for the training loop. */
  otherSettings: Record<string, string>;
}

const AUXILIARY_PARSERS: { [K in AuxiliaryObjectiveName]: (given: Record<string, string>) => Extract<AuxiliaryObjective, { name: K }>['settings'] } = {
  sg: parseSceneGraphSettings,
  adv: parseAdversarialSettings,
  mmd: parseMmdSettings,
  dann: parseDannSettings,
};

/** Every objective's defaults, for `--help` output and the resolved run config. */
export const OBJECTIVE_DEFAULTS = {
  sg: SCENE_GRAPH_DEFAULTS,
  adv: ADVERSARIAL_DEFAULTS,
  mmd: MMD_DEFAULTS,
  dann: DANN_DEFAULTS,
  infonce: INFO_NCE_DEFAULTS,
  bce: SOFT_SCORE_BCE_DEFAULTS,
  mc: MULTIPLE_CHOICE_DEFAULTS,
} as const;

/** Every `--set` key with its default and one line of documentation, e.g. for `vlbench run --help`. */
export function describeObjectiveSettings(): Array<{ key: string; default: unknown; doc: string }> {
  const prefixed = (prefix: string, rows: Array<{ key: string; default: unknown; doc: string }>) => rows.map((row) => ({ ...row, key: `${prefix}.${row.key}` }));
  return [
    ...prefixed('sg', documentSettings(SCENE_GRAPH_SETTING_FIELDS, SCENE_GRAPH_DEFAULTS)),
    ...prefixed('adv', documentSettings(ADVERSARIAL_SETTING_FIELDS, ADVERSARIAL_DEFAULTS)),
    ...prefixed('mmd', documentSettings(MMD_SETTING_FIELDS, MMD_DEFAULTS)),
    ...prefixed('dann', documentSettings(DANN_SETTING_FIELDS, DANN_DEFAULTS)),
    ...prefixed('infonce', documentSettings(INFO_NCE_SETTING_FIELDS, INFO_NCE_DEFAULTS)),
    ...prefixed('bce', documentSettings(SOFT_SCORE_BCE_SETTING_FIELDS, SOFT_SCORE_BCE_DEFAULTS)),
    ...prefixed('mc', documentSettings(MULTIPLE_CHOICE_SETTING_FIELDS, MULTIPLE_CHOICE_DEFAULTS)),
  ];
}

export function parseMethodSpec(spec: string, settings: Readonly<Record<string, string>> = {}): MethodSpec {
  const known = [...BASE_METHODS, ...AUXILIARY_OBJECTIVES];
  const parts = spec.split('+').map((part) => part.trim());
  if (spec.trim() === '' || parts.some((part) => part === '')) {
    throw new InputError(`method "${spec}" has an empty part; expected names joined by "+", e.g. ft+sg+adv (known: ${known.join(', ')})`, { field: '--method' });
  }
  const seen = new Set<string>();
  for (const part of parts) {
    if (!(known as readonly string[]).includes(part)) {
      throw new InputError(`unknown objective "${part}" in method "${spec}"; known: ${known.join(', ')}`, { field: '--method' });
    }
    if (seen.has(part)) throw new InputError(`objective "${part}" appears twice in method "${spec}"`, { field: '--method' });
    seen.add(part);
  }
  const bases = parts.filter((part): part is BaseMethod => (BASE_METHODS as readonly string[]).includes(part));
  if (bases.length !== 1) {
    throw new InputError(`method "${spec}" needs exactly one base, ft or zeroshot, got ${bases.length ? bases.join(' and ') : 'none'}`, { field: '--method' });
  }
  const base = bases[0];
  const names = AUXILIARY_OBJECTIVES.filter((name) => seen.has(name));
  if (base === 'zeroshot' && names.length > 0) {
    throw new InputError(`method "${spec}": zeroshot trains nothing, so it takes no objectives (${names.join(', ')}); use ft+${names.join('+')}`, { field: '--method' });
  }

  const grouped = groupSettings(settings);
  for (const prefix of Object.keys(grouped.byPrefix)) {
    if ((AUXILIARY_OBJECTIVES as readonly string[]).includes(prefix) && !seen.has(prefix)) {
      const keys = Object.keys(grouped.byPrefix[prefix]).map((key) => `${prefix}.${key}`);
      throw new InputError(`setting ${keys.join(', ')} given, but method "${spec}" has no ${prefix} objective`, { field: '--set' });
    }
  }
  const objectives = names.map((name) => ({ name, settings: AUXILIARY_PARSERS[name](grouped.byPrefix[name] ?? {}) }) as AuxiliaryObjective);
  const taskLoss: TaskLossSettings = {
    infonce: parseInfoNceSettings(grouped.byPrefix.infonce ?? {}),
    bce: parseSoftScoreBceSettings(grouped.byPrefix.bce ?? {}),
    mc: parseMultipleChoiceSettings(grouped.byPrefix.mc ?? {}),
  };
  return { spec: [base, ...names].join('+'), base, objectives, taskLoss, otherSettings: grouped.other };
}

function groupSettings(settings: Readonly<Record<string, string>>): { byPrefix: Record<string, Record<string, string>>; other: Record<string, string> } {
  const prefixes: readonly string[] = [...AUXILIARY_OBJECTIVES, ...TASK_LOSSES];
  const byPrefix: Record<string, Record<string, string>> = {};
  const other: Record<string, string> = {};
  for (const [fullKey, value] of Object.entries(settings)) {
    const dot = fullKey.indexOf('.');
    const prefix = dot > 0 ? fullKey.slice(0, dot) : '';
    if (prefixes.includes(prefix)) (byPrefix[prefix] ??= {})[fullKey.slice(dot + 1)] = value;
    else other[fullKey] = value;
  }
  return { byPrefix, other };
}

/**
 * Turns repeated `--set key=value` options into a record. A key given twice is refused
 * rather than letting the last one win unnoticed.
 */
export function parseSetOptions(values: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InputError(`expected key=value, got ${JSON.stringify(item)}`, { field: '--set' });
    const key = item.slice(0, eq).trim();
    if (key === '') throw new InputError(`expected key=value, got ${JSON.stringify(item)}`, { field: '--set' });
    if (Object.hasOwn(result, key)) throw new InputError(`"${key}" is set twice`, { field: '--set' });
    result[key] = item.slice(eq + 1);
  }
  return result;
}

export type ObjectiveSettings<K extends AuxiliaryObjectiveName> = Extract<AuxiliaryObjective, { name: K }>['settings'];

/** The settings of objective `name` when the method includes it. */
export function objectiveSettings<K extends AuxiliaryObjectiveName>(method: MethodSpec, name: K): ObjectiveSettings<K> | undefined {
  const found = method.objectives.find((objective) => objective.name === name);
  return found?.settings as ObjectiveSettings<K> | undefined;
}

export * from './settings.ts';
