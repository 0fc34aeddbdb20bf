import test from 'ava';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gqaTask, loadGqaSplit, readGqaPredictions, scoreGqa } from '../../tasks/gqa/index.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);


// File order on purpose: a JavaScript object (this literal included) lists integer-like ids first, in
// numeric order, so the files are written from `questionEntries`, which keeps the order below.
const questions = {
  '0200': {
    imageId: 'n1', question: 'What do the cat and the dog have in common?', answer: 'color', fullAnswer: 'Both are black.', isBalanced: true,
    types: { structural: 'compare', semantic: 'obj', detailed: 'objCommon' }, entailed: [], equivalent: ['0200'], groups: { global: 'common', local: '13-cat_dog' },
    semantic: [{ operation: 'select', argument: 'cat (1)', dependencies: [] }, { operation: 'select', argument: 'dog (2)', dependencies: [] }, { operation: 'common', argument: '', dependencies: [0, 1] }],
  },
  '102': {
    imageId: 'n1', question: 'Is the cat black?', answer: 'yes', isBalanced: true,
    types: { structural: 'verify', semantic: 'attr', detailed: 'verifyAttr' }, entailed: ['101'], equivalent: [], groups: { global: null, local: '06-cat_color' },
    semantic: [{ operation: 'select', argument: 'cat (1)', dependencies: [] }, { operation: 'verify color', argument: 'black', dependencies: [0] }],
  },
  '201307251': {
    imageId: 'n1', question: 'Is the cat white?', answer: 'no', isBalanced: false,
    types: { structural: 'verify', semantic: 'attr', detailed: 'verifyAttr' }, entailed: [], equivalent: [], groups: { global: null, local: '06-cat_color' },
    semantic: [{ operation: 'select', argument: 'cat (1)', dependencies: [] }, { operation: 'verify color', argument: 'white', dependencies: [0] }],
  },
  '101': {
    imageId: 'n1', question: 'What color is the cat?', answer: 'black', isBalanced: true,
    types: { structural: 'query', semantic: 'attr', detailed: 'objColor' }, entailed: ['102', '201307251', '101'], equivalent: [], groups: { global: 'color', local: '10q-cat_color' },
    semantic: [{ operation: 'select', argument: 'cat (1)', dependencies: [] }, { operation: 'query', argument: 'color', dependencies: [0] }],
  },
};

const fileOrder = ['0200', '102', '201307251', '101'] as const;
const questionEntries = fileOrder.map((id) => [id, questions[id]] as const);

const choices = {
  '0200': { valid: ['x'], plausible: ['x'] },
  '102': { valid: ['yes', 'no'], plausible: ['yes', 'no'] },
  '101': { valid: ['black', 'white', 'gray'], plausible: ['black', 'white'] },
};

const sceneGraphs = {
  n1: {
    width: 640, height: 480,
    objects: {
      '1': { name: 'cat', x: 10, y: 20, w: 100, h: 80, attributes: ['black'], relations: [{ name: 'near', object: '2' }] },
      '2': { name: 'dog', x: 200, y: 40, w: 120, h: 90, attributes: ['black'], relations: [] },
    },
  },
};

const predictions = [
  { questionId: '101', prediction: 'black' },
  { questionId: '102', prediction: 'maybe' },
  { questionId: '201307251', prediction: 'no' },
  { questionId: '0200', prediction: 'material' },
];

async function dataset(chunked = false): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-gqa-'));
  if (chunked) {
    await mkdir(join(dir, 'val_balanced_questions'));
    const entries = questionEntries;
    await writeFile(join(dir, 'val_balanced_questions', 'val_balanced_questions_1.json'), `{${entries.slice(2).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
    await writeFile(join(dir, 'val_balanced_questions', 'val_balanced_questions_0.json'), `{${entries.slice(0, 2).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  } else {
    // written by hand so the file keeps the order above
    await writeFile(join(dir, 'val_balanced_questions.json'), `{${questionEntries.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')}}`);
  }
  await writeFile(join(dir, 'val_choices.json'), JSON.stringify(choices));
  await writeFile(join(dir, 'val_sceneGraphs.json'), JSON.stringify(sceneGraphs));
  await writeFile(join(dir, 'predictions.json'), JSON.stringify(predictions));
  return dir;
}

const expected = {
  accuracy: 33.33, // 101 right; 102 and 0200 wrong; 201307251 is not balanced
  binary: 0,
  open: 100,
  accuracyPerStructuralType: { compare: 0, query: 100, verify: 0 },
  accuracyPerSemanticType: { attr: 50, obj: 0 },
  accuracyPerLength: { 4: 0, 5: 100, 10: 0 },
  consistency: 50, // 101 is right; of its entailed 102 (wrong) and 201307251 (right): 1/2
  validity: 66.67, // "maybe" is not valid for 102; "material" is, for a "Common" question
  plausibility: 66.67,
  distribution: 0.01, // groups color {black: 1 vs 1}, common {color: 1 vs 0}: (0·1 + 1·1) / 2 / 100 = 0.005 → 0.01
  accuracyPerSteps: { 2: 50, 3: 0 },
};

test('loads questions in file order, with choices and scene graphs; scores as eval.py', async (t) => {
  const dir = await dataset();
  const split = await loadGqaSplit({ dataDir: dir, split: 'val' });
  t.deepEqual(split.examples.map((example) => example.questionId), ['0200', '102', '201307251', '101']);
  t.is(split.split, 'val');
  t.is(split.examples[3].imagePath, join(dir, 'images', 'n1.jpg'));
  t.is(split.examples[3].steps, 2);
  t.is(split.examples[3].sceneGraph?.objects['1'].relations[0].object, '2');
  t.deepEqual(split.examples[3].choices, choices['101']);
  const report = scoreGqa(split, await readGqaPredictions(split, join(dir, 'predictions.json')));
  t.deepEqual(report.official, expected);
  t.deepEqual(report.perExample, [{ id: '0200', score: 0, image: 'n1' }, { id: '102', score: 0, image: 'n1' }, { id: '101', score: 100, image: 'n1' }]);
});

test('chunked question folders load like one file', async (t) => {
  const dir = await dataset(true);
  const split = await loadGqaSplit({ files: { questions: join(dir, 'val_balanced_questions.json'), choices: join(dir, 'val_choices.json') }, split: '' });
  t.is(split.split, 'val');
  t.deepEqual(split.examples.map((example) => example.questionId), ['0200', '102', '201307251', '101']);
  t.is(split.files.length, 3);
  const report = scoreGqa(split, await readGqaPredictions(split, join(dir, 'predictions.json')));
  t.is((report.official as typeof expected).validity, 66.67);
});

test('without choices or entailed questions, those metrics are left out rather than guessed', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-gqa-'));
  const balancedOnly = Object.fromEntries(Object.entries(questions).filter(([id]) => id !== '201307251'));
  await writeFile(join(dir, 'q.json'), JSON.stringify(balancedOnly));
  const split = await loadGqaSplit({ files: { questions: join(dir, 'q.json') }, split: 'val' });
  const report = scoreGqa(split, new Map(predictions.filter((p) => p.questionId !== '201307251').map((p) => [p.questionId, p.prediction])));
  const official = report.official as Record<string, unknown>;
  t.is(official.accuracy, 33.33);
  t.false('validity' in official);
  t.false('consistency' in official); // 101 entails 201307251, which is not in this file
});

test('bad files and predictions are refused naming the file, the record and the field', async (t) => {
  const dir = await dataset();
  const split = await loadGqaSplit({ dataDir: dir, split: 'val' });
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify([{ questionId: 101, prediction: 'black' }]));
  await t.throwsAsync(readGqaPredictions(split, file), { message: `${file}: 1 malformed prediction record: [0].questionId is number 101, not a string` });
  await writeFile(file, JSON.stringify(predictions.slice(1)));
  await t.throwsAsync(readGqaPredictions(split, file), { message: `${file}, field "questionId": 1 ("101") questionIds of split "val" have no prediction; nothing is scored on a subset` });

  const broken = structuredClone(sceneGraphs);
  broken.n1.objects['1'].relations[0].object = '9';
  await writeFile(join(dir, 'val_sceneGraphs.json'), JSON.stringify(broken));
  await t.throwsAsync(loadGqaSplit({ dataDir: dir, split: 'val' }), {
    message: `${join(dir, 'val_sceneGraphs.json')}, record "n1", field "objects.1.relations[0].object": expected the id of an object of this image, got "9"`,
  });

  const badQuestion = { ...questions, '102': { ...questions['102'], isBalanced: 'yes' } };
  await writeFile(join(dir, 'val_balanced_questions.json'), JSON.stringify(badQuestion));
  await t.throwsAsync(loadGqaSplit({ files: { questions: join(dir, 'val_balanced_questions.json') }, split: 'val' }), {
    message: `${join(dir, 'val_balanced_questions.json')}, record "102", field "isBalanced": expected true or false, got "yes"`,
  });
});

test('the predictions writer keeps the split order and refuses partial predictions', async (t) => {
  const dir = await dataset();
  const split = await loadGqaSplit({ dataDir: dir, split: 'val' });
  const out = join(dir, 'out.json');
  await t.throwsAsync(gqaTask.writeSubmission(split, new Map([['101', 'black']]), out), { message: /3 \("0200", "102", "201307251"\)/ });
  await gqaTask.writeSubmission(split, new Map(predictions.map((p) => [p.questionId, p.prediction])), out);
  t.deepEqual((JSON.parse(await readFile(out, 'utf8')) as { questionId: string }[]).map((p) => p.questionId), ['0200', '102', '201307251', '101']);
});
