import { InputError } from '../../core/errors.ts';
import { TASK_NAMES } from '../../tasks/registry.ts';
import type { TaskAdapter } from './adapter.ts';
import { vqaAdapter } from './vqa.ts';
import { gqaAdapter } from './gqa.ts';
import { vcrAdapter } from './vcr.ts';
import { retrievalAdapter } from './retrieval.ts';
import { vizwizAdapter } from './vizwiz.ts';

/** One adapter per task that `vlbench run` can train; a new dataset adds its adapter here. */
export const ADAPTERS: readonly TaskAdapter[] = [vqaAdapter, gqaAdapter, vcrAdapter, retrievalAdapter, vizwizAdapter];

/** The tasks `vlbench run` takes: those of the registry that have an adapter, in registry order. */
export const RUN_TASKS: readonly string[] = TASK_NAMES.filter((name) => ADAPTERS.some((adapter) => adapter.task === name));

export function getAdapter(task: string): TaskAdapter {
  const adapter = ADAPTERS.find((candidate) => candidate.task === task);
  if (!adapter) throw new InputError(`--task "${task}" is not a task vlbench run can train; expected one of ${RUN_TASKS.join(', ')}`, { field: '--task' });
  return adapter;
}

export type { AdapterContext, HeadSettings, PreparedModel, RunSplits, TaskAdapter } from './adapter.ts';
