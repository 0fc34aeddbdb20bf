import { join } from 'node:path';
import { fieldError } from '../../core/errors.ts';
import { isObject } from '../split-files.ts';

// What a GQA example is, and how the official questions file's record becomes one: shared by the
// JSON loader (index.ts) and the Hub parquet loader (hub-parquet.ts), so both give the same examples.

export const GQA_TASK_VERSION = 'gqa/1';

export interface GqaObject {
  name: string;
  x: number;
  y: number;
  w: number;
  h: number;
  attributes: string[];
  relations: { name: string; object: string }[];
}

export interface GqaSceneGraph {
  width: number;
  height: number;
  objects: Record<string, GqaObject>;
}

export interface GqaExample {
  id: string;
  questionId: string;
  imageId: string;
  /** `<imagesDir>/<imageId>.jpg`; resolved, not checked for existence. */
  imagePath: string;
  question: string;
  isBalanced: boolean;
  /** Absent on test splits. */
  answer?: string;
  fullAnswer?: string;
  types?: { structural?: string; semantic?: string; detailed?: string };
  /** Ids of questions whose answers follow from this one's (the official field, self included where the file has it). */
  entailed: string[];
  equivalent: string[];
  /** groups.global: the answer-distribution group, null for questions outside any. */
  globalGroup?: string | null;
  /** Reasoning steps as eval.py counts them (program operations minus exist / query name / choose name). */
  steps?: number;
  /** When a choices file was loaded. */
  choices?: { valid: string[]; plausible: string[] };
  /** When a scene-graph file was loaded: the image's graph (shared between the image's questions). */
  sceneGraph?: GqaSceneGraph;
}

/**
 * One question record of the official file, as an example. `at` names the record in errors (the
 * question id in the JSON layout; the parquet loader, which builds the same record from a row,
 * names the row).
 */
export function readQuestion(record: unknown, questionId: string, file: string, imagesDir: string, at: string = questionId): GqaExample {
  if (!isObject(record)) throw fieldError(file, at, '(question)', 'an object', record);
  const imageId = record.imageId;
  if (typeof imageId !== 'string' || imageId === '') throw fieldError(file, at, 'imageId', 'a non-empty string', imageId);
  if (imageId.includes('/') || imageId.includes('\\') || imageId.startsWith('.')) {
    throw fieldError(file, at, 'imageId', 'an image name, not a path', imageId);
  }
  const question = record.question;
  if (typeof question !== 'string') throw fieldError(file, at, 'question', 'a string', question);
  const isBalanced = record.isBalanced;
  if (typeof isBalanced !== 'boolean') throw fieldError(file, at, 'isBalanced', 'true or false', isBalanced);
  const example: GqaExample = {
    id: questionId,
    questionId,
    imageId,
    imagePath: join(imagesDir, `${imageId}.jpg`),
    question,
    isBalanced,
    entailed: optionalStrings(record.entailed, file, questionId, 'entailed'),
    equivalent: optionalStrings(record.equivalent, file, questionId, 'equivalent'),
  };
  for (const field of ['answer', 'fullAnswer'] as const) {
    const value = record[field];
    if (value !== undefined && typeof value !== 'string') throw fieldError(file, at, field, 'a string', value);
    if (value !== undefined) example[field] = value as string;
  }
  if (record.types !== undefined) {
    if (!isObject(record.types)) throw fieldError(file, at, 'types', 'an object {structural, semantic, detailed}', record.types);
    const types: GqaExample['types'] = {};
    for (const key of ['structural', 'semantic', 'detailed'] as const) {
      const value = record.types[key];
      if (value !== undefined && typeof value !== 'string') throw fieldError(file, at, `types.${key}`, 'a string', value);
      if (value !== undefined) types[key] = value as string;
    }
    example.types = types;
  }
  if (record.groups !== undefined) {
    if (!isObject(record.groups)) throw fieldError(file, at, 'groups', 'an object {global, local}', record.groups);
    const globalGroup = record.groups.global;
    if (globalGroup !== null && globalGroup !== undefined && typeof globalGroup !== 'string') throw fieldError(file, at, 'groups.global', 'a string or null', globalGroup);
    example.globalGroup = (globalGroup as string | null | undefined) ?? null;
  }
  if (record.semantic !== undefined) example.steps = countSteps(record.semantic, file, at);
  return example;
}

/** eval.py's getStepsNum: operations whose "operation: argument" contains none of exist, "query: name", "choose name". */
function countSteps(program: unknown, file: string, at: string): number {
  if (!Array.isArray(program)) throw fieldError(file, at, 'semantic', 'an array of {operation, argument, dependencies}', program);
  let steps = 0;
  program.forEach((step, index) => {
    if (!isObject(step) || typeof step.operation !== 'string' || typeof step.argument !== 'string') {
      throw fieldError(file, at, `semantic[${index}]`, 'an object with string operation and argument', step);
    }
    const text = `${step.operation}: ${step.argument}`;
    if (!['exist', 'query: name', 'choose name'].some((marker) => text.includes(marker))) steps++;
  });
  return steps;
}

export function optionalStrings(value: unknown, file: string, record: string, field: string): string[] {
  if (value === undefined) return [];
  if (!isStringArray(value)) throw fieldError(file, record, field, 'an array of question ids (strings)', value);
  return value;
}

export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
