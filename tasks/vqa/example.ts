import type { LoadedSplit } from '../../core/types.ts';

/** A VQA v2 example, whichever layout it was read from (official JSON, or the Hub's parquet). */

/** Bumps when what the loader puts in an example changes. */
export const VQA_TASK_VERSION = 'vqa-v2/1';

/** The number of human answers per question in VQA v2; the 0.3/0.6/0.9/1 accuracy steps depend on it. */
export const VQA_ANSWERS_PER_QUESTION = 10;

export interface VqaExample {
  /** The question id as a string, for the leaderboard's per-example records. */
  id: string;
  questionId: number;
  imageId: number;
  /**
   * `<imagesDir>/<subtype>/COCO_<subtype>_<image id, 12 digits>.jpg`, resolved, not checked for
   * existence; for a split read from the Hub's parquet, `<shard>#row=<row>` (readVqaHubImage reads it).
   */
  imagePath: string;
  question: string;
  /** The 10 human answers in annotation order, raw (the scorer normalises them); empty on test splits. */
  answers: string[];
  answerType?: string;
  questionType?: string;
  multipleChoiceAnswer?: string;
}

/** The split, with the header fields of its files. */
export interface VqaSplitInfo {
  /** data_type of the files: "mscoco", "abstract_v002", "synthscenes", …; "hub-parquet" for lmms-lab/VQAv2's parquet. */
  dataType: string;
  /** data_subtype: "val2014", "test-dev2015", "val_source", …; the Hub's split name ("validation") for parquet. */
  dataSubtype: string;
  annotated: boolean;
}

export type LoadedVqaSplit = LoadedSplit<VqaExample> & { info?: VqaSplitInfo };
