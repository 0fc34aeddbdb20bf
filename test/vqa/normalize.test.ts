import test from 'ava';
import { cleanWhitespace, normalizeVqaAnswer, processDigitArticle, processPunctuation } from '../../tasks/vqa/index.ts';

// Expected values worked out by hand from GT-Vision-Lab/VQA vqaEval.py (processPunctuation, processDigitArticle).

test('digit-comma-digit anywhere deletes every punctuation mark', (t) => {
  t.is(processPunctuation('1,000'), '1000');
  t.is(processPunctuation('a,b 1,2'), 'ab 12');
  t.is(processPunctuation('red-blue 3,4'), 'redblue 34');
});

test('a mark next to a space is deleted, elsewhere it becomes a space', (t) => {
  t.is(processPunctuation('red,blue'), 'red blue');
  t.is(processPunctuation('red, blue'), 'red blue');
  t.is(processPunctuation('x-ray'), 'x ray');
  t.is(processPunctuation('x -ray'), 'x ray');
  t.is(processPunctuation('(red)'), ' red ');
  t.is(processPunctuation('yes!'), 'yes ');
  // the test looks at the original text: "a -b-c" deletes every "-", even the one between letters
  t.is(processPunctuation('a -b-c'), 'a bc');
  // quotes and colons are not in the official list
  t.is(processPunctuation("'yes': no"), "'yes': no");
});

test('periods go unless a digit follows, at most 32 of them', (t) => {
  t.is(processPunctuation('3.5'), '3.5');
  t.is(processPunctuation('end.'), 'end');
  t.is(processPunctuation('U.S.A.'), 'USA');
  t.is(processPunctuation('.5'), '.5');
  t.is(processPunctuation('5.'), '5');
  t.is(processPunctuation('..5'), '.5');
  t.is(processPunctuation('.'.repeat(33)), '.');
  t.is(processPunctuation('.'.repeat(40)), '.'.repeat(8));
});

test('number words, articles and contractions', (t) => {
  t.is(processDigitArticle('Two Dogs'), '2 dogs');
  t.is(processDigitArticle('none'), '0');
  t.is(processDigitArticle('ten'), '10');
  t.is(processDigitArticle('a dog'), 'dog');
  t.is(processDigitArticle('The  cat  and an apple'), 'cat and apple');
  t.is(processDigitArticle('the'), '');
  t.is(processDigitArticle('dont'), "don't");
  t.is(processDigitArticle('Dont know'), "don't know");
  // capitalised keys of the official table can never match a lowercased word
  t.is(processDigitArticle('Im'), 'im');
  t.is(processDigitArticle("somebody'd"), 'somebodyd');
});

test('whitespace is cleaned as the evaluator does', (t) => {
  t.is(cleanWhitespace('\tyes\n'), 'yes');
  t.is(cleanWhitespace('a\nb'), 'a b');
  // Python's strip() knows U+001F, JavaScript's trim() does not; U+FEFF is the other way round
  t.is(cleanWhitespace('\x1fyes\u00a0'), 'yes');
  t.is(cleanWhitespace('\ufeffyes'), '\ufeffyes');
});

test('full normalisation', (t) => {
  t.is(normalizeVqaAnswer('Two.'), '2');
  t.is(normalizeVqaAnswer(' The Dog! '), 'dog');
  t.is(normalizeVqaAnswer('1,000'), '1000');
  t.is(normalizeVqaAnswer('isnt'), "isn't");
  t.is(normalizeVqaAnswer('3.5'), '3.5');
});
