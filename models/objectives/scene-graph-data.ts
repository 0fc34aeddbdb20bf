import type { NormalisedBox } from '../ops/regions.ts';

// What a task adapter hands the scene-graph objective: one graph per image, its boxes in crop
// coordinates and its labels as vocabulary indices. Kept apart from the loss so the objective
// interface (objective.ts) can name it without importing the objective.

export interface SceneGraphObject {
  box: NormalisedBox;
  /** Index in the object-class vocabulary. */
  classIndex: number;
  /** Attribute vocabulary indices; absent when the dataset does not annotate attributes. */
  attributes?: readonly number[];
}

export interface SceneGraphRelation {
  /** Indices into the image's `objects`. */
  subject: number;
  object: number;
  /** Index in the predicate vocabulary (0-based, without "none"). */
  predicate: number;
}

export interface SceneGraph {
  objects: readonly SceneGraphObject[];
  /** Absent when the dataset does not annotate relations; then no pairs are scored for this image. */
  relations?: readonly SceneGraphRelation[];
}
