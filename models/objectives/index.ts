import { InputError } from '../../core/errors.ts';
import { documentSettings, type SettingFields } from './settings.ts';
import { adversarialObjective } from './adversarial.ts';
import { dannObjective } from './dann.ts';
import { INFO_NCE_DEFAULTS, INFO_NCE_SETTING_FIELDS, parseInfoNceSettings, type InfoNceSettings } from './info-nce.ts';
import { mmdObjective } from './mmd.ts';
import { MULTIPLE_CHOICE_DEFAULTS, MULTIPLE_CHOICE_SETTING_FIELDS, parseMultipleChoiceSettings, type MultipleChoiceSettings } from './multiple-choice-ce.ts';
import type { Objective, ObjectiveReport, ProblemKind, RunShape } from './objective.ts';
import { sceneGraphAuxiliaryObjective } from './scene-graph.ts';
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

/**
 * The auxiliary objectives, in canonical SPEC order. Adding an objective is one file under
 * models/objectives/ (see objective.ts) and one entry here.
 */
export const OBJECTIVES = [sceneGraphAuxiliaryObjective, adversarialObjective, mmdObjective, dannObjective] as const;
export const AUXILIARY_OBJECTIVES = OBJECTIVES.map((objective) => objective.name);
export const TASK_LOSSES = ['infonce', 'bce', 'mc'] as const;

export type BaseMethod = (typeof BASE_METHODS)[number];
type ObjectiveDefinition = (typeof OBJECTIVES)[number];
export type AuxiliaryObjectiveName = ObjectiveDefinition['name'];
export type ObjectiveSettings<K extends AuxiliaryObjectiveName> = Extract<ObjectiveDefinition, { name: K }>['defaults'];

/** One objective of a parsed SPEC: its definition and its resolved settings. */
export interface AuxiliaryObjective<K extends AuxiliaryObjectiveName = AuxiliaryObjectiveName> {
  name: K;
  settings: ObjectiveSettings<K>;
  definition: Objective<K, ObjectiveSettings<K>>;
}

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

const TASK_LOSS_DEFINITIONS = {
  infonce: { defaults: INFO_NCE_DEFAULTS, fields: INFO_NCE_SETTING_FIELDS },
  bce: { defaults: SOFT_SCORE_BCE_DEFAULTS, fields: SOFT_SCORE_BCE_SETTING_FIELDS },
  mc: { defaults: MULTIPLE_CHOICE_DEFAULTS, fields: MULTIPLE_CHOICE_SETTING_FIELDS },
} as const;

type DefaultsByName = { [O in ObjectiveDefinition as O['name']]: O['defaults'] };

/** Every objective's and task loss's defaults, for `--help` output and the resolved run config. */
export const OBJECTIVE_DEFAULTS = {
  ...(Object.fromEntries(OBJECTIVES.map((objective) => [objective.name, objective.defaults])) as DefaultsByName),
  infonce: INFO_NCE_DEFAULTS,
  bce: SOFT_SCORE_BCE_DEFAULTS,
  mc: MULTIPLE_CHOICE_DEFAULTS,
};

/** Every `--set` key with its default and one line of documentation, e.g. for `vlbench run --help`. */
export function describeObjectiveSettings(): Array<{ key: string; default: unknown; doc: string }> {
  const prefixed = (prefix: string, rows: Array<{ key: string; default: unknown; doc: string }>) => rows.map((row) => ({ ...row, key: `${prefix}.${row.key}` }));
  return [
    ...OBJECTIVES.flatMap((objective) => prefixed(objective.name, documentSettings(objective.fields as unknown as SettingFields<Record<string, unknown>>, objective.defaults as unknown as Record<string, unknown>))),
    ...Object.entries(TASK_LOSS_DEFINITIONS).flatMap(([name, loss]) => prefixed(name, documentSettings(loss.fields as unknown as SettingFields<Record<string, unknown>>, loss.defaults as unknown as Record<string, unknown>))),
  ];
}

/** Objectives of a SPEC that need something of the data: target-domain images, scene graphs. */
export function methodNeeds(method: MethodSpec): { targetDomain: boolean; sceneGraphs: boolean } {
  return {
    targetDomain: method.objectives.some((objective) => objective.definition.needsTargetDomain === true),
    sceneGraphs: method.objectives.some((objective) => objective.definition.needsSceneGraphs === true),
  };
}

/** The SPEC with each objective's settings resolved against the run (objectives without `resolveForRun` keep theirs). */
export function resolveObjectivesForRun(method: MethodSpec, run: RunShape): MethodSpec {
  const objectives = method.objectives.map((objective) => {
    const resolve = objective.definition.resolveForRun as ((settings: unknown, run: RunShape) => unknown) | undefined;
    return resolve ? ({ ...objective, settings: resolve(objective.settings, run) } as AuxiliaryObjective) : objective;
  });
  return { ...method, objectives };
}

/**
 * The run log's lines about the objectives after training: each objective's summary (read off
 * the curve's parts), and a warning line for each that stayed inert (the run ends with them).
 */
export function objectiveReportLines(method: MethodSpec, curve: readonly Readonly<Record<string, number>>[]): { summaries: string[]; warnings: string[] } {
  if (curve.length === 0) return { summaries: [], warnings: [] };
  const reports = method.objectives.flatMap((objective) => {
    const report = objective.definition.report as ((settings: unknown, curve: readonly Readonly<Record<string, number>>[]) => ObjectiveReport | null) | undefined;
    const made = report?.(objective.settings, curve);
    return made ? [{ name: objective.name, ...made }] : [];
  });
  return { summaries: reports.map((r) => r.summary), warnings: reports.flatMap((r) => (r.inert ? [`warning: ${r.name} stayed inert: ${r.inert}`] : [])) };
}

/** Why a SPEC cannot train a problem of this kind (the first objective that refuses), or null. */
export function unsupportedObjective(method: MethodSpec, kind: ProblemKind): string | null {
  for (const objective of method.objectives) {
    const reason = objective.definition.unsupported(kind);
    if (reason) return reason;
  }
  return null;
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
  const objectives = OBJECTIVES.filter((definition) => seen.has(definition.name)).map(
    (definition) => ({ name: definition.name, settings: definition.parse(grouped.byPrefix[definition.name] ?? {}), definition }) as AuxiliaryObjective,
  );
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

/** The settings of objective `name` when the method includes it. */
export function objectiveSettings<K extends AuxiliaryObjectiveName>(method: MethodSpec, name: K): ObjectiveSettings<K> | undefined {
  const found = method.objectives.find((objective) => objective.name === name);
  return found?.settings as ObjectiveSettings<K> | undefined;
}

export * from './settings.ts';
export type { LossTerm, Objective, ObjectiveBatch, ObjectiveModule, ObjectiveReport, ObjectiveSetup, PerturbableForwardPass, PerturbationSite, PerturbedModality, ProblemKind, RunShape, WrappedPassResult } from './objective.ts';
