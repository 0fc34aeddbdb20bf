import { InputError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import { vqaTask } from './vqa/index.ts';
import { gqaTask } from './gqa/index.ts';
import { vcrTask } from './vcr/index.ts';
import { retrievalTask } from './retrieval/index.ts';
import { vizwizTask } from './vizwiz/index.ts';

/**
 * Every task vlbench knows, by the name used on the command line and in run records.
 * Adding a dataset = one folder under tasks/ and one line here.
 */
const TASKS: readonly Task[] = [vqaTask, gqaTask, vcrTask, retrievalTask, vizwizTask];

const BY_NAME: ReadonlyMap<string, Task> = new Map(TASKS.map((task) => [task.name, task]));

/** Task names in registry order: the choices of every --task flag. */
export const TASK_NAMES: readonly string[] = TASKS.map((task) => task.name);

export function knownTaskNames(): string[] {
  return [...BY_NAME.keys()];
}

export function listTasks(): readonly Task[] {
  return TASKS;
}

/** The task registered under `name`; an unknown name is an InputError that lists the known ones. */
export function getTask(name: string): Task {
  const task = BY_NAME.get(name);
  if (task === undefined) {
    throw new InputError(`unknown task "${name}"; known tasks: ${knownTaskNames().join(', ')}`, { field: 'task' });
  }
  return task;
}
