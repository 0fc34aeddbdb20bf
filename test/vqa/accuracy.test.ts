import test from 'ava';
import { computeVqaAccuracy, pythonRound, vqaQuestionAccuracy, vqaSoftScore } from '../../tasks/vqa/index.ts';

const ten = (answer: string) => Array.from({ length: 10 }, () => answer);
const mixed = (matching: string, count: number, other = 'cat') => [...Array.from({ length: count }, () => matching), ...Array.from({ length: 10 - count }, () => other)];
const reported = (accuracy: number) => pythonRound(100 * accuracy, 2);

test('"Yes" against ten "yes": 0 in the current evaluator, 100 in the legacy one', (t) => {
  t.is(vqaQuestionAccuracy(ten('yes'), 'Yes', 'current'), 0);
  t.is(vqaQuestionAccuracy(ten('yes'), 'Yes', 'legacy'), 1);
  t.is(vqaQuestionAccuracy(ten('yes'), 'yes', 'current'), 1);
});

test('"two" against ten "2": 0 current, 100 legacy', (t) => {
  t.is(vqaQuestionAccuracy(ten('2'), 'two', 'current'), 0);
  t.is(vqaQuestionAccuracy(ten('2'), 'two', 'legacy'), 1);
});

test('stripping of \\n, \\t and spaces happens before the all-identical test in the current evaluator', (t) => {
  t.is(vqaQuestionAccuracy(ten('yes'), ' yes\n', 'current'), 1);
  t.is(vqaQuestionAccuracy([...ten('yes').slice(0, 9), 'yes\t'], 'yes', 'current'), 1);
});

test('0..4 matching annotators give 0, 30, 60, 90, 100 through the leave-one-out mean', (t) => {
  t.deepEqual([0, 1, 2, 3, 4, 10].map((count) => reported(vqaQuestionAccuracy(mixed('dog', count), 'dog'))), [0, 30, 60, 90, 100, 100]);
  // the unrounded values are the evaluator's float sums, e.g. (9 × 1/3) / 10 and (3 × 2/3 + 7) / 10
  t.is(vqaQuestionAccuracy(mixed('dog', 1), 'dog'), (1 / 3 + 1 / 3 + 1 / 3 + 1 / 3 + 1 / 3 + 1 / 3 + 1 / 3 + 1 / 3 + 1 / 3) / 10);
  t.is(vqaQuestionAccuracy(mixed('dog', 3), 'dog'), (2 / 3 + 2 / 3 + 2 / 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1) / 10);
  t.is(reported(vqaQuestionAccuracy(mixed('dog', 3), 'dog')), 90);
});

test('normalisation applies to mixed answer sets in both modes', (t) => {
  // digits: three "two" among "three"s; the prediction "2"
  t.is(reported(vqaQuestionAccuracy(mixed('two', 3, 'three'), '2', 'current')), 90);
  t.is(reported(vqaQuestionAccuracy(mixed('two', 3, 'three'), '2', 'legacy')), 0); // legacy answers get punctuation only
  t.is(reported(vqaQuestionAccuracy(mixed('2', 3, 'three'), 'two', 'legacy')), 90);
  // digit-comma-digit
  t.is(reported(vqaQuestionAccuracy(mixed('1000', 2, '100'), '1,000', 'current')), 60);
  t.is(reported(vqaQuestionAccuracy(mixed('1,000', 2, '100'), '1000', 'legacy')), 60);
  // periods
  t.is(reported(vqaQuestionAccuracy(mixed('3.5', 4, '3'), '3.5', 'current')), 100);
  t.is(reported(vqaQuestionAccuracy(mixed('end', 1, 'start'), 'end.', 'current')), 30);
  // articles: the current evaluator normalises answers too, the legacy one does not drop their articles
  t.is(reported(vqaQuestionAccuracy(mixed('the dog', 3), 'dog', 'current')), 90);
  t.is(reported(vqaQuestionAccuracy(mixed('the dog', 3), 'the dog', 'legacy')), 0);
  t.is(reported(vqaQuestionAccuracy(mixed('dog', 3), 'the dog', 'legacy')), 90);
  // contractions
  t.is(reported(vqaQuestionAccuracy(mixed("don't", 2, 'no'), 'dont', 'current')), 60);
  t.is(reported(vqaQuestionAccuracy(mixed("don't", 2, 'no'), 'dont', 'legacy')), 60);
  // case
  t.is(reported(vqaQuestionAccuracy(mixed('red', 4, 'blue'), 'RED', 'current')), 100);
});

test('Python round(): correctly rounded, exact binary ties to even', (t) => {
  t.is(pythonRound(0.125, 2), 0.12);
  t.is(pythonRound(0.375, 2), 0.38);
  t.is(pythonRound(12.125, 2), 12.12);
  t.is(pythonRound(2.675, 2), 2.67); // 2.675 is 2.67499999… in binary
  t.is(pythonRound(1.005, 2), 1); // likewise below the half
  t.is(pythonRound(100 * 0.3, 2), 30);
  t.is(pythonRound(66.66666666666667, 2), 66.67);
  t.is(pythonRound(-0.125, 2), -0.12);
});

test('overall and per-type accuracies average unrounded values and round once', (t) => {
  const questions = [
    { questionId: 1, answers: mixed('dog', 1), answerType: 'other', questionType: 'what animal is' },
    { questionId: 2, answers: mixed('dog', 2), answerType: 'other', questionType: 'what animal is' },
    { questionId: 3, answers: ten('yes'), answerType: 'yes/no', questionType: 'is this' },
  ];
  const result = computeVqaAccuracy(questions, () => 'dog');
  // (0.3 + 0.6 + 0) / 3 → 30; per type (0.3 + 0.6) / 2 → 45
  t.deepEqual(result.official, { overall: 30, perAnswerType: { other: 45, 'yes/no': 0 }, perQuestionType: { 'what animal is': 45, 'is this': 0 } });
  t.deepEqual(Object.keys(result.official.perAnswerType), ['other', 'yes/no']);
  const thirds = computeVqaAccuracy([questions[0], questions[0], questions[2]], () => 'dog');
  t.is(thirds.official.overall, 20); // 100·0.6/3
  const seven = computeVqaAccuracy(Array.from({ length: 7 }, (_, i) => ({ ...questions[0], questionId: i })), () => 'dog');
  t.is(seven.official.overall, 30);
});

test('soft score for training normalises both sides', (t) => {
  t.is(pythonRound(vqaSoftScore(mixed('Two', 3, 'three'), '2'), 1), 0.9);
  t.is(vqaSoftScore(ten('yes'), 'Yes'), 1);
  t.is(vqaSoftScore(ten('yes'), 'no'), 0);
});
