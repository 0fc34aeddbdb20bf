import type { SeededRandom } from '../../core/random.ts';
import {
  DIRECTIONS,
  SHAPE_PLURALS,
  SYNTH_COLORS,
  SYNTH_SHAPES,
  type Scene,
  gqaObjectId,
  pairsNamedByColor,
  soleObjectInDirection,
  uniqueReference,
  withArticle,
} from './scene.ts';

/**
 * GQA-format questions for one scene. Questions come in small groups about one object
 * or relation, linked through `entailed`, so GQA's consistency metric has something to
 * measure: answering the query right implies answering its verify / choose questions.
 */

export interface GqaQuestion {
  imageId: string;
  question: string;
  answer: string;
  fullAnswer: string;
  isBalanced: true;
  types: { structural: 'query' | 'verify' | 'logical' | 'choose' | 'compare'; semantic: 'obj' | 'attr' | 'rel' | 'global'; detailed: string };
  groups: { global: string | null; local: string };
  entailed: string[];
  equivalent: string[];
  semantic: { operation: string; dependencies: number[]; argument: string }[];
  annotations: { question: Record<string, string>; answer: Record<string, string>; fullAnswer: Record<string, string> };
}

type Draft = Omit<GqaQuestion, 'imageId' | 'isBalanced' | 'entailed' | 'equivalent' | 'semantic' | 'annotations'> & {
  /** Indexes (within this image's drafts) of the questions this one's answer implies. */
  entails: number[];
  /** Scene-object indexes the question mentions, for GQA's annotations pointers. */
  mentions: number[];
};

/** GQA question ids are strings; these stay unique across the benchmark (at most 100 per image). */
export function gqaQuestionId(imageId: number, index: number): string {
  return String(imageId * 100 + index);
}

export function gqaQuestionsFor(scene: Scene, imageId: number, imageName: string, rng: SeededRandom): Record<string, GqaQuestion> {
  const drafts: Draft[] = [];
  const add = (group: Omit<Draft, 'entails'>[], entails: (ids: number[]) => number[][]) => {
    const base = drafts.length;
    const ids = group.map((_, i) => base + i);
    const links = entails(ids);
    group.forEach((draft, i) => drafts.push({ ...draft, entails: links[i] }));
  };

  colorGroup(scene, rng, add);
  relationGroup(scene, rng, add);
  logicalQuestion(scene, rng, add);
  compareQuestion(scene, rng, add);

  const out: Record<string, GqaQuestion> = {};
  drafts.forEach((draft, index) => {
    const id = gqaQuestionId(imageId, index);
    const pointers: Record<string, string> = {};
    for (const object of draft.mentions) pointers[String(Object.keys(pointers).length)] = gqaObjectId(imageId, object);
    out[id] = {
      imageId: imageName,
      question: draft.question,
      answer: draft.answer,
      fullAnswer: draft.fullAnswer,
      isBalanced: true,
      types: draft.types,
      groups: draft.groups,
      entailed: draft.entails.map((other) => gqaQuestionId(imageId, other)),
      equivalent: [id],
      semantic: [],
      annotations: { question: pointers, answer: {}, fullAnswer: pointers },
    };
  });
  return out;
}

type Add = (group: Omit<Draft, 'entails'>[], entails: (ids: number[]) => number[][]) => void;

function colorGroup(scene: Scene, rng: SeededRandom, add: Add): void {
  for (const index of rng.shuffled(scene.objects.map((_, i) => i))) {
    const reference = uniqueReference(scene, index, ['size']);
    if (!reference) continue;
    const color = scene.objects[index].color;
    const other = rng.pick(SYNTH_COLORS.filter((c) => c !== color));
    const verified = rng.next() < 0.5 ? color : other;
    const [first, second] = rng.next() < 0.5 ? [color, other] : [other, color];
    const local = `color-${index}`;
    const The = capitalise(`the ${reference}`);
    add(
      [
        {
          question: `What color is the ${reference}?`,
          answer: color,
          fullAnswer: `${The} is ${color}.`,
          types: { structural: 'query', semantic: 'attr', detailed: 'queryColor' },
          groups: { global: 'color', local },
          mentions: [index],
        },
        {
          question: `Is the ${reference} ${verified}?`,
          answer: verified === color ? 'yes' : 'no',
          fullAnswer: verified === color ? `Yes, the ${reference} is ${color}.` : `No, the ${reference} is ${color}.`,
          types: { structural: 'verify', semantic: 'attr', detailed: 'verifyColor' },
          groups: { global: null, local },
          mentions: [index],
        },
        {
          question: `Is the ${reference} ${first} or ${second}?`,
          answer: color,
          fullAnswer: `${The} is ${color}.`,
          types: { structural: 'choose', semantic: 'attr', detailed: 'chooseColor' },
          groups: { global: 'color', local },
          mentions: [index],
        },
      ],
      // Knowing the colour answers all three; a "yes" to the verify question also gives the colour, a "no" does not.
      ([query, verify, choose]) => [[verify, choose], verified === color ? [query, choose] : [], [query, verify]],
    );
    return;
  }
}

function relationGroup(scene: Scene, rng: SeededRandom, add: Add): void {
  for (const anchor of rng.shuffled(scene.objects.map((_, i) => i))) {
    const reference = uniqueReference(scene, anchor, ['color', 'size']);
    if (!reference) continue;
    for (const direction of rng.shuffled(DIRECTIONS)) {
      const only = soleObjectInDirection(scene, anchor, direction);
      if (only === null) continue;
      const shape = scene.objects[only].shape;
      // soleObjectInDirection means nothing else is on that side, so any other shape is clearly absent there.
      const asked = rng.next() < 0.5 ? shape : rng.pick(SYNTH_SHAPES.filter((s) => s !== shape));
      const local = `rel-${anchor}-${direction}`;
      add(
        [
          {
            question: `What is ${direction} the ${reference}?`,
            answer: shape,
            fullAnswer: `The ${shape} is ${direction} the ${reference}.`,
            types: { structural: 'query', semantic: 'rel', detailed: 'relS' },
            groups: { global: shape, local },
            mentions: [anchor, only],
          },
          {
            question: `Is there ${withArticle(asked)} ${direction} the ${reference}?`,
            answer: asked === shape ? 'yes' : 'no',
            fullAnswer: asked === shape ? `Yes, there is ${withArticle(shape)} ${direction} the ${reference}.` : `No, there is ${withArticle(shape)} ${direction} the ${reference}.`,
            types: { structural: 'verify', semantic: 'rel', detailed: 'existRelS' },
            groups: { global: null, local },
            mentions: [anchor],
          },
        ],
        ([query, verify]) => [[verify], asked === shape ? [query] : []],
      );
      return;
    }
  }
}

function logicalQuestion(scene: Scene, rng: SeededRandom, add: Add): void {
  const [first, second] = rng.shuffled(SYNTH_SHAPES);
  const has = (shape: string) => scene.objects.some((o) => o.shape === shape);
  const both = rng.next() < 0.5;
  const answer = both ? has(first) && has(second) : has(first) || has(second);
  const question = both
    ? `Are there both ${SHAPE_PLURALS[first]} and ${SHAPE_PLURALS[second]} in the image?`
    : `Is there either ${withArticle(first)} or ${withArticle(second)} in the image?`;
  const fullAnswer = answer
    ? both
      ? `Yes, there are both ${SHAPE_PLURALS[first]} and ${SHAPE_PLURALS[second]}.`
      : `Yes, there is ${has(first) ? withArticle(first) : withArticle(second)}.`
    : both
      ? `No, there are not both ${SHAPE_PLURALS[first]} and ${SHAPE_PLURALS[second]}.`
      : `No, there are no ${SHAPE_PLURALS[first]} or ${SHAPE_PLURALS[second]}.`;
  add(
    [
      {
        question,
        answer: answer ? 'yes' : 'no',
        fullAnswer,
        types: { structural: 'logical', semantic: 'obj', detailed: both ? 'logicAnd' : 'logicOr' },
        groups: { global: null, local: `logic-${first}-${second}` },
        mentions: [],
      },
    ],
    () => [[]],
  );
}

function compareQuestion(scene: Scene, rng: SeededRandom, add: Add): void {
  const pairs = pairsNamedByColor(scene);
  if (pairs.length === 0) return;
  const differing = pairs.filter(({ a, b }) => scene.objects[a].size !== scene.objects[b].size);
  if (rng.next() < 0.5 || differing.length === 0) {
    // Half the time from pairs that share a colour, where there are any, so "yes" is not rare.
    const sameColor = pairs.filter(({ a, b }) => scene.objects[a].color === scene.objects[b].color);
    const { a, b, refA, refB } = sameColor.length && rng.next() < 0.5 ? rng.pick(sameColor) : rng.pick(pairs);
    const [oa, ob] = [scene.objects[a], scene.objects[b]];
    const same = oa.color === ob.color;
    add(
      [
        {
          question: `Are the ${refA} and the ${refB} the same color?`,
          answer: same ? 'yes' : 'no',
          fullAnswer: same ? `Yes, both the ${refA} and the ${refB} are ${oa.color}.` : `No, the ${refA} is ${oa.color} and the ${refB} is ${ob.color}.`,
          types: { structural: 'compare', semantic: 'attr', detailed: same ? 'sameColor' : 'diffColor' },
          groups: { global: null, local: `compare-color-${a}-${b}` },
          mentions: [a, b],
        },
      ],
      () => [[]],
    );
    return;
  }
  const { a, b, refA, refB } = rng.pick(differing);
  const bigger = scene.objects[a].size === 'large' ? refA : refB;
  add(
    [
      {
        question: `Which is bigger, the ${refA} or the ${refB}?`,
        answer: bigger,
        fullAnswer: `The ${bigger} is bigger.`,
        types: { structural: 'compare', semantic: 'attr', detailed: 'compareSize' },
        groups: { global: null, local: `compare-size-${a}-${b}` },
        mentions: [a, b],
      },
    ],
    () => [[]],
  );
}

function capitalise(text: string): string {
  return text[0].toUpperCase() + text.slice(1);
}
