/**
 * Renders VCR token lists, which mix words and detection tags (`["Why", "is", [0], "smiling", "?"]`),
 * to text. The rule (README.md, "Detection tags") is part of the task version: change it and
 * bump VCR_TASK_VERSION, because every rendered question and choice changes with it.
 */

/** A VCR token: a word, or a detection tag listing 0-based indexes into the example's `objects`. */
export type VcrToken = string | number[];

/**
 * R2C's list, in R2C's order (rowanz/r2c dataloaders/vcr.py), including its repeated "Peyton"
 * at positions 6 and 10: models trained with R2C-style text saw exactly these names.
 */
export const GENDER_NEUTRAL_NAMES: readonly string[] = [
  'Casey', 'Riley', 'Jessie', 'Jackie', 'Avery', 'Jaime', 'Peyton', 'Kerry', 'Jody', 'Kendall',
  'Peyton', 'Skyler', 'Frankie', 'Pat', 'Quinn',
];

/** One question, answer or rationale: the raw tokens and what they render to. */
export interface VcrText {
  /** The tokens exactly as in the jsonl. */
  tokens: VcrToken[];
  /** The rendered words: plain tokens unchanged, each tag expanded to names joined by "," / "and". */
  words: string[];
  /** Per rendered word, the index into `objects` it names, or -1 for plain words and joiners. */
  wordTags: number[];
  /** `words` joined with the spacing rule of `joinWords`. */
  text: string;
}

/**
 * The text that names object `index`: `person` objects take GENDER_NEUTRAL_NAMES[index mod 15]
 * (by the object's index in `objects`, as R2C's dataloader does when it keeps all detections and
 * adds no whole-image box), so a person has the same name in the question and every choice.
 * Other objects are named by their class.
 */
export function objectName(objects: readonly string[], index: number): string {
  const kind = objects[index];
  return kind === 'person' ? GENDER_NEUTRAL_NAMES[index % GENDER_NEUTRAL_NAMES.length] : kind;
}

/** Renders tokens whose tag indexes the caller has already checked against `objects`. */
export function renderVcrTokens(tokens: VcrToken[], objects: readonly string[]): VcrText {
  const words: string[] = [];
  const wordTags: number[] = [];
  for (const token of tokens) {
    if (typeof token === 'string') {
      words.push(token);
      wordTags.push(-1);
      continue;
    }
    // "Casey", "Casey and Riley", "Casey, Riley and Jordan": the joiners are words of their own
    // (tag -1) so that words and wordTags stay aligned.
    token.forEach((objectIndex, position) => {
      if (position > 0) {
        words.push(position === token.length - 1 ? 'and' : ',');
        wordTags.push(-1);
      }
      words.push(objectName(objects, objectIndex));
      wordTags.push(objectIndex);
    });
  }
  return { tokens, words, wordTags, text: joinWords(words) };
}

// VCR's tokens come from a word tokenizer that splits off punctuation and clitics; these glue back
// to the previous word so the text reads like the original sentence.
const ATTACHES_TO_PREVIOUS = new Set(['.', ',', '?', '!', ';', ':', ')', ']', '}', '%', '...', "n't"]);
const ATTACHES_TO_NEXT = new Set(['(', '[', '{']);

/**
 * Joins words with single spaces, except: no space before `. , ? ! ; : ) ] } % ...`, before `n't`
 * or before a word that starts with an apostrophe (`'s`, `'re`); no space after `( [ {`.
 */
export function joinWords(words: readonly string[]): string {
  let text = '';
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const glued = i === 0 || ATTACHES_TO_PREVIOUS.has(word.toLowerCase()) || word.startsWith("'") || ATTACHES_TO_NEXT.has(words[i - 1]);
    text += glued ? word : ` ${word}`;
  }
  return text;
}
