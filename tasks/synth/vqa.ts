import type { SeededRandom } from '../../core/random.ts';
import {
  DIRECTIONS,
  SHAPE_PLURALS,
  SYNTH_COLORS,
  SYNTH_SHAPES,
  type ReferenceAttribute,
  type Scene,
  type SynthColor,
  type SynthShape,
  oppositeDirection,
  pairsNamedByColor,
  soleDirection,
  soleObjectInDirection,
  uniqueReference,
  withArticle,
} from './scene.ts';

/**
 * VQA v2 questions for one scene, each with the single answer the scene graph gives,
 * and the ten answers of simulated annotators.
 */

export type AnswerKind = 'yesno' | 'number' | 'color' | 'shape' | 'size';
export type VqaFamily = 'existence' | 'counting' | 'color' | 'shape' | 'size' | 'spatial' | 'comparison';

export interface VqaQuestionDraft {
  family: VqaFamily;
  question: string;
  /** VQA-style question type: the question's opening words. */
  questionType: string;
  answerType: 'yes/no' | 'number' | 'other';
  kind: AnswerKind;
  /** The canonical answer, already in the form the official normalisation produces. */
  answer: string;
}

export interface VqaAnswer {
  answer: string;
  answer_confidence: 'yes' | 'maybe' | 'no';
  answer_id: number;
}

/**
 * Up to ten questions per image, in two rounds over the seven families (a second question of a
 * family names other objects or asks the other way). Five (1.3.0 and before, as VQA v2's ~5.4)
 * left the relational head ~10k questions from 3,000 images, and gate A (bench/vqa-gates.ts)
 * measured it overfitting there (train 99.8, validation 87.9); questions per image cost no image
 * encoding, so the demo and the benches get twice the questions for the same images. Question
 * ids are imageId·10 + k, so ten is also the most the ids hold.
 */
export const VQA_QUESTIONS_PER_IMAGE = 10;
const VQA_ROUNDS = 2;
const MAX_DEVIATING_ANNOTATORS = 4;

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

export function vqaQuestionsFor(scene: Scene, rng: SeededRandom): VqaQuestionDraft[] {
  const families: ((scene: Scene, rng: SeededRandom) => VqaQuestionDraft | null)[] = [
    existenceQuestion,
    countingQuestion,
    attributeQuestion('color'),
    shapeQuestion,
    attributeQuestion('size'),
    spatialQuestion,
    comparisonQuestion,
  ];
  const drafts: VqaQuestionDraft[] = [];
  for (let round = 0; round < VQA_ROUNDS; round++) {
    for (const family of rng.shuffled(families)) {
      if (drafts.length === VQA_QUESTIONS_PER_IMAGE) break;
      const draft = family(scene, rng);
      if (draft && !drafts.some((d) => d.question === draft.question)) drafts.push(draft);
    }
  }
  return drafts;
}

function existenceQuestion(scene: Scene, rng: SeededRandom): VqaQuestionDraft {
  let color: SynthColor;
  let shape: SynthShape;
  const present = (c: SynthColor, s: SynthShape) => scene.objects.some((o) => o.color === c && o.shape === s);
  if (rng.next() < 0.5) {
    ({ color, shape } = rng.pick(scene.objects));
  } else {
    // Absent combinations that share a colour or a shape with something present are the plausible ones.
    const absent: [SynthColor, SynthShape][] = [];
    for (const o of scene.objects) {
      for (const c of SYNTH_COLORS) if (!present(c, o.shape)) absent.push([c, o.shape]);
      for (const s of SYNTH_SHAPES) if (!present(o.color, s)) absent.push([o.color, s]);
    }
    [color, shape] = rng.pick(absent);
  }
  return {
    family: 'existence',
    question: `Is there ${withArticle(`${color} ${shape}`)}?`,
    questionType: 'is there a',
    answerType: 'yes/no',
    kind: 'yesno',
    answer: present(color, shape) ? 'yes' : 'no',
  };
}

function countingQuestion(scene: Scene, rng: SeededRandom): VqaQuestionDraft {
  const byColor = rng.next() < 0.3;
  if (byColor) {
    const color = rng.next() < 0.9 ? rng.pick(scene.objects).color : rng.pick(SYNTH_COLORS);
    return {
      family: 'counting',
      question: `How many ${color} shapes are there?`,
      questionType: 'how many',
      answerType: 'number',
      kind: 'number',
      answer: String(scene.objects.filter((o) => o.color === color).length),
    };
  }
  // Real VQA counts are mostly small but not mostly one: lean towards shapes that occur more than once.
  const repeated = scene.objects.filter((o) => scene.objects.filter((other) => other.shape === o.shape).length > 1);
  const roll = rng.next();
  const shape = roll < 0.1 ? rng.pick(SYNTH_SHAPES) : repeated.length && roll < 0.55 ? rng.pick(repeated).shape : rng.pick(scene.objects).shape;
  return {
    family: 'counting',
    question: `How many ${SHAPE_PLURALS[shape]} are there?`,
    questionType: 'how many',
    answerType: 'number',
    kind: 'number',
    answer: String(scene.objects.filter((o) => o.shape === shape).length),
  };
}

/** "What color is the large circle?" / "What size is the red circle?": the object is named by its shape and, where needed, the other attribute. */
function attributeQuestion(attribute: 'color' | 'size'): (scene: Scene, rng: SeededRandom) => VqaQuestionDraft | null {
  const namedBy: ReferenceAttribute = attribute === 'color' ? 'size' : 'color';
  return (scene, rng) => {
    for (const index of rng.shuffled(scene.objects.map((_, i) => i))) {
      const reference = uniqueReference(scene, index, [namedBy]);
      if (!reference) continue;
      return {
        family: attribute,
        question: `What ${attribute} is the ${reference}?`,
        questionType: `what ${attribute} is the`,
        answerType: 'other',
        kind: attribute,
        answer: scene.objects[index][attribute],
      };
    }
    return null;
  };
}

function shapeQuestion(scene: Scene, rng: SeededRandom): VqaQuestionDraft | null {
  for (const index of rng.shuffled(scene.objects.map((_, i) => i))) {
    const target = scene.objects[index];
    // Named without its shape: by colour, else by size and colour.
    const sameColor = scene.objects.filter((o) => o.color === target.color);
    const sameColorAndSize = sameColor.filter((o) => o.size === target.size);
    const reference = sameColor.length === 1 ? target.color : sameColorAndSize.length === 1 ? `${target.size} ${target.color}` : null;
    if (!reference) continue;
    return {
      family: 'shape',
      question: `What shape is the ${reference} object?`,
      questionType: 'what shape is the',
      answerType: 'other',
      kind: 'shape',
      answer: target.shape,
    };
  }
  return null;
}

function spatialQuestion(scene: Scene, rng: SeededRandom): VqaQuestionDraft | null {
  for (const anchor of rng.shuffled(scene.objects.map((_, i) => i))) {
    const reference = uniqueReference(scene, anchor, ['color', 'size']);
    if (!reference) continue;
    for (const direction of rng.shuffled(DIRECTIONS)) {
      const only = soleObjectInDirection(scene, anchor, direction);
      if (only === null) continue;
      return {
        family: 'spatial',
        question: `What is ${direction} the ${reference}?`,
        questionType: 'what is',
        answerType: 'other',
        kind: 'shape',
        answer: scene.objects[only].shape,
      };
    }
  }
  return null;
}

function comparisonQuestion(scene: Scene, rng: SeededRandom): VqaQuestionDraft | null {
  const pairs = pairsNamedByColor(scene);
  if (pairs.length === 0) return null;
  if (rng.next() < 0.5) {
    // Mostly pairs of different sizes, in either order: about as many "yes" as "no".
    const differing = pairs.filter(({ a, b }) => scene.objects[a].size !== scene.objects[b].size);
    const { a, b, refA, refB } = differing.length && rng.next() < 0.8 ? rng.pick(differing) : rng.pick(pairs);
    return {
      family: 'comparison',
      question: `Is the ${refA} bigger than the ${refB}?`,
      questionType: 'is the',
      answerType: 'yes/no',
      kind: 'yesno',
      answer: scene.objects[a].size === 'large' && scene.objects[b].size === 'small' ? 'yes' : 'no',
    };
  }
  const directional = pairs.filter(({ a, b }) => soleDirection(scene, a, b) !== null);
  if (directional.length === 0) return null;
  const { a, b, refA, refB } = rng.pick(directional);
  const direction = soleDirection(scene, a, b)!;
  // Only the opposite is asked as the false case: a shape above and a little to the left
  // of another is not clearly "not to the left of" it for a person.
  const asked = rng.next() < 0.5 ? direction : oppositeDirection(direction);
  return {
    family: 'comparison',
    question: `Is the ${refA} ${asked} the ${refB}?`,
    questionType: 'is the',
    answerType: 'yes/no',
    kind: 'yesno',
    answer: asked === direction ? 'yes' : 'no',
  };
}

/** Another plausible answer of the same kind, preferring what is in the scene. */
function wrongAnswer(draft: VqaQuestionDraft, scene: Scene, rng: SeededRandom): string {
  switch (draft.kind) {
    case 'yesno':
      return draft.answer === 'yes' ? 'no' : 'yes';
    case 'number': {
      const n = Number(draft.answer);
      return String(n === 0 ? 1 : rng.next() < 0.5 ? n - 1 : n + 1);
    }
    case 'size':
      return draft.answer === 'large' ? 'small' : 'large';
    case 'color':
    case 'shape': {
      const vocabulary: readonly string[] = draft.kind === 'color' ? SYNTH_COLORS : SYNTH_SHAPES;
      const inScene = scene.objects.map((o) => (draft.kind === 'color' ? o.color : o.shape)).filter((v) => v !== draft.answer);
      return inScene.length && rng.next() < 0.7 ? rng.pick(inScene) : rng.pick(vocabulary.filter((v) => v !== draft.answer));
    }
  }
}

const SYNONYMS: Record<string, string[]> = {
  gray: ['grey'],
  purple: ['violet'],
  large: ['big'],
  small: ['tiny', 'little'],
  diamond: ['rhombus'],
  square: ['box'],
  hexagon: ['hexagonal'],
  yes: ['yeah'],
  no: ['nope'],
};

/**
 * The same answer as people type it: capitalised, with a full stop, a number word, an
 * article, or a synonym. Case, punctuation, number words and articles are undone by the
 * official normalisation; synonyms are not, which the soft score then reflects.
 */
function variantOf(draft: VqaQuestionDraft, rng: SeededRandom): string {
  const answer = draft.answer;
  const capitalised = answer[0].toUpperCase() + answer.slice(1);
  const variants = [capitalised, `${answer}.`];
  if (draft.kind === 'number') variants.push(NUMBER_WORDS[Number(answer)], NUMBER_WORDS[Number(answer)]);
  if (draft.kind === 'shape') variants.push(withArticle(answer), withArticle(answer));
  if (draft.kind === 'yesno') variants.push(`${answer}!`);
  if (SYNONYMS[answer] && rng.next() < 0.5) variants.push(...SYNONYMS[answer]);
  return rng.pick(variants);
}

/**
 * Ten simulated annotators. A question is clean (all ten agree, as for most of VQA),
 * slightly or very noisy; noisy annotators type a variant or, less often, get it wrong.
 */
export function simulateAnswers(draft: VqaQuestionDraft, scene: Scene, rng: SeededRandom): { answers: VqaAnswer[]; multipleChoiceAnswer: string } {
  const noise = rng.pick([0, 0, 0.15, 0.3, 0.5]);
  const answers: VqaAnswer[] = [];
  let deviations = 0;
  for (let id = 1; id <= 10; id++) {
    let answer = draft.answer;
    let answer_confidence: VqaAnswer['answer_confidence'] = rng.next() < 0.9 ? 'yes' : 'maybe';
    // At most four stray answers, so the right answer is always the most common one.
    if (deviations < MAX_DEVIATING_ANNOTATORS && rng.next() < noise) {
      deviations++;
      if (rng.next() < 0.35) {
        answer = wrongAnswer(draft, scene, rng);
        answer_confidence = rng.pick(['maybe', 'maybe', 'no', 'yes']);
      } else {
        answer = variantOf(draft, rng);
      }
    }
    answers.push({ answer, answer_confidence, answer_id: id });
  }
  return { answers, multipleChoiceAnswer: mostCommonAnswer(answers) };
}

/** Most frequent answer string; ties go to the one given first. */
export function mostCommonAnswer(answers: readonly { answer: string }[]): string {
  const counts = new Map<string, number>();
  for (const { answer } of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  let best = answers[0].answer;
  for (const [answer, count] of counts) if (count > counts.get(best)!) best = answer;
  return best;
}

/**
 * The family of each question type SynthScenes asks (VqaQuestionDraft.questionType), so
 * reports can break a score down by what was asked; "is the" is every comparison (bigger than,
 * left of, above).
 */
export const VQA_FAMILY_OF_QUESTION_TYPE: Readonly<Record<string, VqaFamily>> = {
  'is there a': 'existence',
  'how many': 'counting',
  'what color is the': 'color',
  'what shape is the': 'shape',
  'what size is the': 'size',
  'what is': 'spatial',
  'is the': 'comparison',
};
