import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../core/random.ts';
import type { ScoreReport } from '../../core/types.ts';
import { loadVqaSplit, loadVqaSplitWithJsonParse, type LoadedVqaSplit } from '../../tasks/vqa/load.ts';
import { checkVqaPredictions, readVqaPredictions, readVqaPredictionsWithJsonParse } from '../../tasks/vqa/predictions.ts';
import { scoreVqa } from '../../tasks/vqa/score.ts';
import { scanVqaAnnotations, scanVqaQuestions, scanVqaResults } from '../../tasks/vqa/official-layout-scan.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

// The byte scanner is a fast path in front of JSON.parse: on every file it must give exactly what
// the strict path gives, or hand the file to the strict path so that a malformed one gets the same
// error. These tests write the same content in many legal spellings and compare the two paths.

const temporaryDir = temporaryFolders(test);

/** JSON text of `value` in a random legal spelling: whitespace, escapes, key order, unknown keys with nested values. */
function spell(value: unknown, rng: SeededRandom, { unknownKeys = true } = {}): string {
  const space = () => [' ', '', '\n', '\t', '\r\n  ', ''][rng.int(0, 5)];
  const string = (text: string): string => {
    let out = '"';
    for (const character of text) {
      const code = character.codePointAt(0)!;
      const choice = rng.int(0, 9);
      if (character === '"' || character === '\\') out += `\\${character}`;
      else if (code < 0x20) out += `\\u${code.toString(16).padStart(4, '0')}`;
      else if (choice === 0 && code <= 0xffff) {
        const hex = code.toString(16).padStart(4, '0');
        out += `\\u${rng.int(0, 1) ? hex.toUpperCase() : hex}`;
      }
      else if (choice === 0) {
        // A code point outside the BMP as an escaped surrogate pair.
        const units = String.fromCodePoint(code);
        out += `\\u${units.charCodeAt(0).toString(16)}\\u${units.charCodeAt(1).toString(16)}`;
      } else if (choice === 1 && character === '/') out += '\\/';
      else out += character;
    }
    return `${out}"`;
  };
  const write = (item: unknown, depth: number): string => {
    if (typeof item === 'string') return string(item);
    if (typeof item === 'number' || typeof item === 'boolean' || item === null) return JSON.stringify(item);
    if (Array.isArray(item)) return `[${space()}${item.map((element) => write(element, depth + 1)).join(`${space()},${space()}`)}${space()}]`;
    const entries = Object.entries(item as Record<string, unknown>);
    if (unknownKeys && depth > 0 && rng.int(0, 3) === 0) {
      entries.push([`x_${rng.int(0, 99)}`, { nested: [1, -2.5e-3, true, false, null, { deep: ['}', '"]', '\\'] }], empty: {}, list: [] }]);
    }
    for (let index = entries.length - 1; index > 0; index--) {
      const other = rng.int(0, index);
      [entries[index], entries[other]] = [entries[other], entries[index]];
    }
    return `{${space()}${entries.map(([key, element]) => `${string(key)}${space()}:${space()}${write(element, depth + 1)}`).join(`${space()},${space()}`)}${space()}}`;
  };
  return `${space()}${write(value, 0)}${space()}`;
}

/** Texts the decoder must get right: escapes, non-ASCII, astral characters, lone surrogates, slashes, quotes. */
const TRICKY = ['yes', 'no', '2', 'two', 'Yes', 'black', 'café', 'naïve café', '日本', '😀 dog', 'a "quoted" one', 'back\\slash', 'tab\there', 'new\nline', 'lone \ud800 surrogate', 'end \udfff', '1/2', '1,000', 'the cat.', ' padded '];

function dataset(rng: SeededRandom, count: number, { shuffled = true } = {}) {
  const header = { info: { description: 'test ✓', year: 2017, contributors: ['a', 'b'] }, task_type: 'Open-Ended', data_type: 'mscoco', license: { name: 'CC' }, data_subtype: 'val2014' };
  const pick = () => TRICKY[rng.int(0, TRICKY.length - 1)];
  const ids = Array.from({ length: count }, (_, index) => 1000 + index * 7);
  const questions = ids.map((questionId) => ({ image_id: Math.floor(questionId / 3), question: `${pick()}? ${pick()}`, question_id: questionId }));
  const annotations = ids.map((questionId) => {
    const candidates = [pick(), pick(), pick()];
    const unanimous = rng.int(0, 2) === 0;
    return {
      question_type: ['what color is the', 'how many', 'is the', '__proto__'][rng.int(0, 3)],
      multiple_choice_answer: candidates[0],
      answers: Array.from({ length: 10 }, (_, index) => ({ answer: unanimous ? candidates[0] : candidates[rng.int(0, 2)], answer_confidence: ['yes', 'maybe', 'no'][rng.int(0, 2)], answer_id: index + 1 })),
      image_id: Math.floor(questionId / 3),
      answer_type: ['yes/no', 'number', 'other'][rng.int(0, 2)],
      question_id: questionId,
    };
  });
  // Shuffled, so that annotation order differs from question order (the evaluator walks annotations);
  // official files list both in one order, which the loader checks first.
  for (let index = shuffled ? annotations.length - 1 : 0; index > 0; index--) {
    const other = rng.int(0, index);
    [annotations[index], annotations[other]] = [annotations[other], annotations[index]];
  }
  const results = ids.map((questionId) => ({ question_id: questionId, answer: rng.int(0, 1) ? pick() : annotations[rng.int(0, count - 1)].multiple_choice_answer }));
  return { questions: { ...header, questions }, annotations: { ...header, annotations }, results };
}

interface Written {
  questions: string;
  annotations: string;
  predictions: string;
}

async function writeTexts(texts: { questions: string | Buffer; annotations: string | Buffer; predictions: string | Buffer }): Promise<Written> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-vqa-scan-'));
  const files = { questions: join(dir, 'q.json'), annotations: join(dir, 'a.json'), predictions: join(dir, 'p.json') };
  await Promise.all([writeFile(files.questions, texts.questions), writeFile(files.annotations, texts.annotations), writeFile(files.predictions, texts.predictions)]);
  return files;
}

type PathResult =
  | { split: LoadedVqaSplit; predictions: [number, string][]; report: ScoreReport; legacy: ScoreReport }
  | { error: string };

/** Loads and scores through the fast path and through the strict path alone; both results, or both errors. */
async function bothPaths(files: Written): Promise<{ fast: PathResult; strict: PathResult }> {
  const options = { files: { questions: files.questions, annotations: files.annotations }, split: '', imagesDir: '/images' };
  const run = async (load: typeof loadVqaSplit, read: typeof readVqaPredictions): Promise<PathResult> => {
    try {
      const split = await load(options);
      const predictions = await read(split, files.predictions);
      return { split, predictions: [...predictions], report: scoreVqa(split, predictions), legacy: scoreVqa(split, predictions, { legacyNormalization: true }) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };
  return { fast: await run(loadVqaSplit, readVqaPredictions), strict: await run(loadVqaSplitWithJsonParse, readVqaPredictionsWithJsonParse) };
}

test('fast and strict paths load and score the same data from many spellings of the same files', async (t) => {
  const rng = new SeededRandom(16).fork('vqa-scan');
  for (let round = 0; round < 12; round++) {
    const content = dataset(rng, 40, { shuffled: round % 2 === 0 });
    const files = await writeTexts({ questions: spell(content.questions, rng), annotations: spell(content.annotations, rng), predictions: spell(content.results, rng) });
    const { fast, strict } = await bothPaths(files);
    if (!('split' in fast) || !('split' in strict)) return t.fail(`round ${round}: ${JSON.stringify({ fast, strict })}`);
    // The scanner must have handled these files itself, or the comparison proves nothing.
    t.truthy(scanVqaQuestions(Buffer.from(spell(content.questions, rng))), `round ${round}: questions`);
    t.truthy(scanVqaAnnotations(Buffer.from(spell(content.annotations, rng)), 10), `round ${round}: annotations`);
    t.truthy(scanVqaResults(Buffer.from(spell(content.results, rng))), `round ${round}: results`);
    t.deepEqual(fast.split, strict.split);
    t.deepEqual(fast.predictions, strict.predictions);
    // Bit for bit: per-question scores compared with Object.is, reports whole.
    t.deepEqual(fast.report, strict.report);
    t.deepEqual(fast.legacy, strict.legacy);
    t.true(fast.report.perExample.every((entry, index) => Object.is(entry.score, strict.report.perExample[index].score)));
  }
});

test('the scanner decodes strings exactly as JSON.parse does', (t) => {
  const rng = new SeededRandom(7).fork('strings');
  for (let round = 0; round < 20; round++) {
    const questions = TRICKY.map((text, index) => ({ question_id: index, image_id: index, question: text }));
    const text = spell({ questions }, rng);
    // Through the bytes, as both paths read them (a raw lone surrogate is written as U+FFFD).
    const bytes = Buffer.from(text);
    t.deepEqual(scanVqaQuestions(bytes)?.questions, (JSON.parse(bytes.toString('utf8')) as { questions: { question: string }[] }).questions.map((record) => record.question));
  }
  // Invalid UTF-8 inside a string is not read as U+FFFD: the scanner leaves the file to the strict
  // path, which refuses it (a text file is UTF-8 or refused), in a string it reads or one it skips.
  const bytes = Buffer.concat([Buffer.from('{"questions":[{"question_id":1,"image_id":1,"question":"a'), Buffer.from([0xff, 0xe2, 0x82]), Buffer.from('"}]}')]);
  t.is(scanVqaQuestions(bytes), undefined);
  t.is(scanVqaQuestions(Buffer.concat([Buffer.from('{"info":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","questions":[]}')])), undefined);
  t.is(scanVqaResults(Buffer.concat([Buffer.from('[{"question_id":1,"answer":"caf'), Buffer.from([0xe9]), Buffer.from('"}]')])), undefined);
  // Well-formed UTF-8 outside ASCII is read as it always was.
  t.deepEqual(scanVqaResults(Buffer.from('[{"question_id":1,"answer":"café 日本 😀"}]'))?.answers, ['café 日本 😀']);
  // A byte order mark is skipped, escaped keys are keys, a repeated key is left to JSON.parse (which keeps the last).
  t.deepEqual(scanVqaQuestions(Buffer.from('\ufeff{"questions":[{"question\\u005fid":1,"image_id":2,"\\u0071uestion":"x"}]}'))?.questionIds, [1]);
  t.is(scanVqaQuestions(Buffer.from('{"questions":[{"question_id":1,"image_id":2,"question":"x","question":"y"}]}')), undefined);
});

test('exact accuracies through escaped spellings: ten "yes" (some escaped) against "yes", "Yes" and "ye\\u0073"', async (t) => {
  const header = '"data_subtype": "val2014", "data_type": "mscoco"';
  const questions = `{${header}, "questions": [{"question_id": 1, "image_id": 9, "question": "Is it?"}, {"question_id": 2, "image_id": 9, "question": "Is it?"}, {"question_id": 3, "image_id": 9, "question": "How many?"}]}`;
  const tenYes = Array.from({ length: 10 }, (_, index) => `{"answer": ${index % 2 ? '"yes"' : '"y\\u0065s"'}, "answer_confidence": "yes", "answer_id": ${index + 1}}`).join(', ');
  // 7 × "2", "two", "three", "3": not unanimous, so normalised: "two" → "2"; "2" is matched by 8 answers.
  const mixed = ['2', '2', '2', '2', '2', '2', '2', 'two', 'three', '3'].map((answer, index) => `{"answer_id": ${index + 1}, "answer": "${answer}"}`).join(',');
  const annotations = `{${header}, "annotations": [
    {"question_id": 1, "image_id": 9, "question_type": "is it", "answer_type": "yes/no", "multiple_choice_answer": "yes", "answers": [${tenYes}]},
    {"question_id": 2, "image_id": 9, "question_type": "is it", "answer_type": "yes/no", "multiple_choice_answer": "yes", "answers": [${tenYes}]},
    {"question_id": 3, "image_id": 9, "question_type": "how many", "answer_type": "number", "multiple_choice_answer": "2", "answers": [${mixed}]}]}`;
  const predictions = '[{"question_id": 1, "answer": "ye\\u0073"}, {"question_id": 2, "answer": "Yes"}, {"question_id": 3, "answer": "\\u0074wo"}]';
  const { fast, strict } = await bothPaths(await writeTexts({ questions, annotations, predictions }));
  if (!('report' in fast) || !('report' in strict)) return t.fail(JSON.stringify({ fast, strict }));
  // Unanimous answers are not normalised: "Yes" scores 0. "two" → "2": min(1, 7/3) for the eight "2"s, min(1, 8/3) for the others.
  t.deepEqual(fast.report.perExample, [{ id: '1', score: 100, image: '9' }, { id: '2', score: 0, image: '9' }, { id: '3', score: 100, image: '9' }]);
  t.deepEqual(fast.report.official, { overall: 66.67, perAnswerType: { 'yes/no': 50, number: 100 }, perQuestionType: { 'is it': 50, 'how many': 100 } });
  t.deepEqual(fast.report, strict.report);
});

/** One valid dataset, compact, and edits of its texts that the strict path must judge. */
function validTexts({ shuffled = true } = {}) {
  const content = dataset(new SeededRandom(3).fork('valid'), 4, { shuffled });
  return { content, questions: JSON.stringify(content.questions), annotations: JSON.stringify(content.annotations), predictions: JSON.stringify(content.results) };
}

for (const shuffled of [true, false]) test(`malformed or unusual files get exactly the strict path’s result: the same error, or the same data (${shuffled ? 'annotations shuffled' : 'one order'})`, async (t) => {
  const { content, questions, annotations, predictions } = validTexts({ shuffled });
  const firstId = content.questions.questions[0].question_id;
  const annotated = content.annotations.annotations[0].question_id;
  const edits: { name: string; questions?: string | Buffer; annotations?: string | Buffer; predictions?: string | Buffer; fails: boolean }[] = [
    { name: 'truncated annotations', annotations: annotations.slice(0, -5), fails: true },
    { name: 'trailing garbage', questions: `${questions} x`, fails: true },
    { name: 'two top-level values', predictions: `${predictions}[]`, fails: true },
    { name: 'raw control character in a string', questions: questions.replace('?', '?\u0001'), fails: true },
    { name: 'raw control character in a string without escapes', predictions: predictions.replace(/"answer":"/, '"answer":"\u001f'), fails: true },
    { name: 'unknown escape', questions: questions.replace('?', '?\\x'), fails: true },
    { name: 'short \\u escape', annotations: annotations.replace('"yes/no"', '"yes\\u00"').replace('"number"', '"num\\u12"').replace('"other"', '"ot\\u1"'), fails: true },
    { name: 'leading zero in an id', questions: questions.replace(`"question_id":${firstId}`, `"question_id":0${firstId}`), fails: true },
    { name: 'id as a string', questions: questions.replace(`"question_id":${firstId}`, `"question_id":"${firstId}"`), fails: true },
    { name: 'fractional id', questions: questions.replace(`"question_id":${firstId}`, `"question_id":${firstId}.5`), fails: true },
    { name: 'id spelled with a fraction that is an integer', questions: questions.replace(`"question_id":${firstId}`, `"question_id":${firstId}.000`), fails: false },
    { name: 'id spelled with an exponent', predictions: predictions.replace(`"question_id":${firstId}`, `"question_id":${firstId / 1000}e3`), fails: false },
    { name: 'image ids -0 against 0 (equal for the strict path)', questions: questions.replaceAll(/"image_id":\d+/g, '"image_id":-0'), annotations: annotations.replaceAll(/"image_id":\d+/g, '"image_id":0'), fails: false },
    { name: 'duplicate question id', questions: questions.replace(`"question_id":${content.questions.questions[1].question_id}`, `"question_id":${firstId}`), fails: true },
    { name: 'duplicate question id, the last equal to the first', questions: questions.replace(`"question_id":${content.questions.questions.at(-1)!.question_id}`, `"question_id":${firstId}`), fails: true },
    {
      name: 'questions not in increasing id order',
      questions: JSON.stringify({ ...content.questions, questions: [...content.questions.questions].reverse() }),
      fails: false,
    },
    { name: 'annotation for an unknown question', annotations: annotations.replace(`"question_id":${annotated}`, '"question_id":5'), fails: true },
    { name: 'annotation with another image', annotations: annotations.replace(/"image_id":(\d+)/, (_, id) => `"image_id":${Number(id) + 1}`), fails: true },
    { name: 'nine answers', annotations: annotations.replace(/,\{"answer":[^}]*"answer_id":10\}/, ''), fails: true },
    { name: 'repeated answer id', annotations: annotations.replace('"answer_id":2', '"answer_id":1'), fails: true },
    { name: 'answer_confidence not a string', annotations: annotations.replace('"answer_confidence":"yes"', '"answer_confidence":1').replace('"answer_confidence":"no"', '"answer_confidence":null').replace('"answer_confidence":"maybe"', '"answer_confidence":[]'), fails: true },
    { name: 'answer_confidence missing (allowed)', annotations: annotations.replaceAll(/,"answer_confidence":"[a-z]+"/g, ''), fails: false },
    { name: 'missing answer_type', annotations: annotations.replace(/,"answer_type":"[^"]*"/, ''), fails: true },
    { name: 'answers not an array', annotations: annotations.replace(/"answers":\[[^\]]*\]/, '"answers":{}'), fails: true },
    { name: 'repeated key (JSON.parse keeps the last)', annotations: annotations.replace('"answer_type":', '"answer_type":"other","answer_type":'), fails: false },
    { name: 'data_subtype of another split', annotations: annotations.replace('"data_subtype":"val2014"', '"data_subtype":"train2014"'), fails: true },
    { name: 'data_subtype not a string', questions: questions.replace('"data_subtype":"val2014"', '"data_subtype":2014'), fails: true },
    { name: 'no questions array', questions: questions.replace('"questions":', '"questionz":'), fails: true },
    { name: 'top level an array', questions: `[${questions}]`, fails: true },
    { name: 'predictions an object', predictions: `{"results":${predictions}}`, fails: true },
    { name: 'prediction id twice', predictions: predictions.replace(`"question_id":${content.results[1].question_id}`, `"question_id":${content.results[0].question_id}`), fails: true },
    { name: 'negative prediction id', predictions: predictions.replace(`"question_id":${content.results[1].question_id}`, '"question_id":-4'), fails: true },
    { name: 'prediction answer a number', predictions: predictions.replace(/"answer":"[^"]*"/, '"answer":3'), fails: true },
    { name: 'nesting too deep for the scanner, fine for JSON.parse', questions: questions.replace('"info":', `"deep":${'['.repeat(100_000)}${']'.repeat(100_000)},"info":`), fails: false },
    { name: 'byte order mark', questions: `\ufeff${questions}`, annotations: `\ufeff${annotations}`, predictions: `\ufeff${predictions}`, fails: false },
    { name: 'invalid UTF-8 inside an answer', predictions: latin1Answer(predictions), fails: true },
    { name: 'invalid UTF-8 in a skipped string', annotations: Buffer.concat([Buffer.from('{"note":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(`",${annotations.slice(1)}`)]), fails: true },
    { name: 'invalid UTF-8 outside strings', questions: Buffer.concat([Buffer.from(questions.slice(0, -1)), Buffer.from([0xc3]), Buffer.from('}')]), fails: true },
  ];
  for (const edit of edits) {
    const files = await writeTexts({ questions: edit.questions ?? questions, annotations: edit.annotations ?? annotations, predictions: edit.predictions ?? predictions });
    const { fast, strict } = await bothPaths(files);
    t.deepEqual(fast, strict, edit.name);
    t.is('error' in strict, edit.fails, `${edit.name}: ${'error' in strict ? strict.error : 'loaded'}`);
  }
});

/** The first answer of a result file with "café" written in Latin-1: one byte 0xe9, not UTF-8. */
function latin1Answer(predictions: string): Buffer {
  const at = predictions.indexOf('"answer":"') + '"answer":"'.length;
  return Buffer.concat([Buffer.from(predictions.slice(0, at)), Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(predictions.slice(at))]);
}

test('a result file or a questions file that is not UTF-8 is refused on both paths, naming the file and the byte offset', async (t) => {
  const { questions, annotations, predictions } = validTexts();
  const badResults = latin1Answer(predictions);
  const offset = badResults.indexOf(0xe9);
  const files = await writeTexts({ questions, annotations, predictions: badResults });
  const { fast, strict } = await bothPaths(files);
  t.deepEqual(fast, strict);
  const shown = Array.from(badResults.subarray(offset, offset + 4), (byte) => `0x${byte.toString(16).padStart(2, '0')}`).join(' ');
  t.is('error' in fast ? fast.error : 'loaded', `${files.predictions}: not UTF-8: invalid byte sequence at byte offset ${offset} (${shown}); text files must be UTF-8`);
  const badQuestions = Buffer.from(questions);
  const at = badQuestions.indexOf('?');
  badQuestions[at] = 0xc0; // an overlong lead byte: never UTF-8
  const questionsFiles = await writeTexts({ questions: badQuestions, annotations, predictions });
  const loaded = await bothPaths(questionsFiles);
  t.deepEqual(loaded.fast, loaded.strict);
  t.regex('error' in loaded.fast ? loaded.fast.error : 'loaded', new RegExp(`q\\.json: not UTF-8: invalid byte sequence at byte offset ${at} `));
});

test('a file that cannot be read is reported before the other is parsed, as the strict path always did', async (t) => {
  const { questions, annotations, predictions } = validTexts();
  const files = await writeTexts({ questions: `${questions}}`, annotations, predictions });
  const missingAnnotations = { ...files, annotations: `${files.annotations}.missing` };
  const { fast, strict } = await bothPaths(missingAnnotations);
  t.deepEqual(fast, strict);
  t.regex('error' in fast ? fast.error : 'loaded', /q\.json: not valid JSON/);
});

test('the quick coverage check still finds extra ids when a split repeats an id', (t) => {
  const split = { task: 'vqa', taskVersion: '1', split: 'made', fingerprint: '', files: [], examples: [1, 1, 2].map((questionId) => ({ id: String(questionId), questionId })) };
  t.notThrows(() => checkVqaPredictions(split, new Map([[1, 'a'], [2, 'b']]), 'p.json'));
  t.throws(() => checkVqaPredictions(split, new Map([[1, 'a'], [2, 'b'], [3, 'c']]), 'p.json'), { message: /1 \(3\) question ids are not in split "made"/ });
  t.throws(() => checkVqaPredictions(split, new Map([[1, 'a']]), 'p.json'), { message: /1 \(2\) question ids of split "made" have no answer/ });
});

test('the coverage check in the split order gives what the order-free check gives', (t) => {
  const made = (ids: number[]) => ({ task: 'vqa', taskVersion: '1', split: 'made', fingerprint: '', files: [], examples: ids.map((questionId) => ({ id: String(questionId), questionId })) });
  const answers = (ids: number[]) => new Map(ids.map((questionId) => [questionId, 'a']));
  // The split's ids in its order, and in another order: both cover it.
  t.notThrows(() => checkVqaPredictions(made([3, 1, 2]), answers([3, 1, 2]), 'p.json'));
  t.notThrows(() => checkVqaPredictions(made([3, 1, 2]), answers([1, 2, 3]), 'p.json'));
  // As many answers as questions, in order up to one that differs: one missing, one extra.
  t.throws(() => checkVqaPredictions(made([3, 1, 2]), answers([3, 1, 4]), 'p.json'), { message: /1 \(2\) question ids of split "made" have no answer; 1 \(4\) question ids are not in split "made"/ });
  // A repeated id in the split, as many answers as examples: the extra one is still found.
  t.throws(() => checkVqaPredictions(made([1, 1, 2]), answers([1, 2, 3]), 'p.json'), { message: /1 \(3\) question ids are not in split "made"/ });
});

test('loads one after the other and at once, reading into reused memory, give what the strict path gives', async (t) => {
  const rng = new SeededRandom(16).fork('vqa-scan-reuse');
  // Sizes close enough that one load's buffers are reused for the next.
  const written = await Promise.all([60, 50, 55].map(async (count) => {
    const content = dataset(rng, count);
    return writeTexts({ questions: JSON.stringify(content.questions), annotations: JSON.stringify(content.annotations), predictions: JSON.stringify(content.results) });
  }));
  const options = written.map(({ questions, annotations }) => ({ files: { questions, annotations }, split: '' }));
  const strict = await Promise.all(options.map((option) => loadVqaSplitWithJsonParse(option)));
  for (let round = 0; round < 2; round++) {
    for (const [index, option] of options.entries()) t.deepEqual(await loadVqaSplit(option), strict[index]);
    t.deepEqual(await Promise.all(options.map((option) => loadVqaSplit(option))), strict);
  }
});
