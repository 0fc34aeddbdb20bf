import test from 'ava';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vlbench } from '../support/cli-in-process.ts';
import { getTask, knownTaskNames } from '../../tasks/registry.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';
import type { LoadedSplit } from '../../core/types.ts';
import type { VcrExample, VcrPredictions } from '../../tasks/vcr/index.ts';
import { writeNpyMatrix, type RetrievalImage } from '../../tasks/retrieval/index.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);



const answers = (list: string[]) => list.map((answer, index) => ({ answer, answer_confidence: 'yes', answer_id: index + 1 }));

async function vqaFiles(): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-score-'));
  const header = { info: {}, task_type: 'Open-Ended', data_type: 'mscoco', license: {}, data_subtype: 'val2014' };
  await writeFile(join(dir, 'Q.json'), JSON.stringify({ ...header, questions: [
    { image_id: 1, question: 'Is it a cat?', question_id: 10 },
    { image_id: 2, question: 'How many?', question_id: 20 },
  ] }));
  await writeFile(join(dir, 'A.json'), JSON.stringify({ ...header, annotations: [
    { question_id: 10, image_id: 1, question_type: 'is it', answer_type: 'yes/no', multiple_choice_answer: 'yes', answers: answers(Array(10).fill('yes')) },
    { question_id: 20, image_id: 2, question_type: 'how many', answer_type: 'number', multiple_choice_answer: '2', answers: answers([...Array(2).fill('2'), ...Array(8).fill('3')]) },
  ] }));
  await writeFile(join(dir, 'P.json'), JSON.stringify([{ question_id: 10, answer: 'Yes' }, { question_id: 20, answer: 'two' }]));
  return dir;
}

test.serial('vlbench score --task vqa prints the official accuracy as one JSON object', async (t) => {
  const dir = await vqaFiles();
  const base = ['score', '--task', 'vqa', '--questions', join(dir, 'Q.json'), '--annotations', join(dir, 'A.json'), '--predictions', join(dir, 'P.json')];
  const current = await vlbench([...base, '--per-question', join(dir, 'per-question.json')]);
  t.is(current.code, 0, current.stderr);
  t.is(current.stdout.trim().split('\n').length, 1);
  // 10: "Yes" vs ten "yes" → 0; 20: "two" → "2" matched by 2 of 10 → 0.6
  t.deepEqual(JSON.parse(current.stdout), { overall: 30, perAnswerType: { 'yes/no': 0, number: 60 }, perQuestionType: { 'is it': 0, 'how many': 60 } });
  t.is(await readFile(join(dir, 'per-question.json'), 'utf8'), '{"10":0,"20":60}\n');
  t.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.tmp')), []);

  const legacy = await vlbench([...base, '--legacy-normalization']);
  t.is(legacy.code, 0, legacy.stderr);
  t.deepEqual(JSON.parse(legacy.stdout), { overall: 80, perAnswerType: { 'yes/no': 100, number: 60 }, perQuestionType: { 'is it': 100, 'how many': 60 } });
});

test.serial('bad input is one line on stderr and exit code 2', async (t) => {
  const dir = await vqaFiles();
  await writeFile(join(dir, 'P.json'), JSON.stringify([{ question_id: 10, answer: 'yes' }]));
  const missing = await vlbench(['score', '--task', 'vqa', '--questions', join(dir, 'Q.json'), '--annotations', join(dir, 'A.json'), '--predictions', join(dir, 'P.json')]);
  t.is(missing.code, 2);
  t.is(missing.stdout, '');
  t.regex(missing.stderr, /^vlbench: error: .*P\.json, field "question_id": 1 \(20\) question ids of split "val2014" have no answer; nothing is scored on a subset\n$/);

  const unknown = await vlbench(['score', '--task', 'nope', '--questions', join(dir, 'Q.json'), '--predictions', join(dir, 'P.json')]);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown task "nope"; known tasks: vqa, gqa, vcr, retrieval, vizwiz/);

  const wrongFlag = await vlbench(['score', '--task', 'gqa', '--questions', join(dir, 'Q.json'), '--predictions', join(dir, 'P.json'), '--legacy-normalization']);
  t.is(wrongFlag.code, 2);
  t.regex(wrongFlag.stderr, /--legacy-normalization applies to vqa and vizwiz only/);

  const noFile = await vlbench(['score', '--task', 'vqa', '--questions', join(dir, 'nothing.json'), '--predictions', join(dir, 'P.json')]);
  t.is(noFile.code, 2);
  t.regex(noFile.stderr, /nothing\.json: --questions: no such file/);
});

test('the registry lists its tasks and refuses unknown names', (t) => {
  t.true(knownTaskNames().includes('vqa'));
  t.true(knownTaskNames().includes('gqa'));
  t.is(getTask('vqa').name, 'vqa');
  t.throws(() => getTask('coco'), { message: /unknown task "coco"; known tasks: / });
});

test.serial('SynthScenes output scores through vlbench score for vqa, gqa, vcr and retrieval', async (t) => {
  const root = await temporaryDir(join(tmpdir(), 'vlbench-synth-'));
  await generateSynthScenes({ outDir: join(root, 'synth'), images: 8, seed: 3, size: 32, domains: ['source'] });
  const synth = join(root, 'synth');

  const annotations = JSON.parse(await readFile(synthPaths.vqaAnnotations(synth, 'val_source'), 'utf8')) as {
    annotations: { question_id: number; multiple_choice_answer: string }[];
  };
  const vqaPredictions = join(root, 'vqa-predictions.json');
  await writeFile(vqaPredictions, JSON.stringify(annotations.annotations.map((a) => ({ question_id: a.question_id, answer: a.multiple_choice_answer }))));
  const vqa = await vlbench(['score', '--task', 'vqa', '--questions', synthPaths.vqaQuestions(synth, 'val_source'), '--annotations', synthPaths.vqaAnnotations(synth, 'val_source'), '--predictions', vqaPredictions]);
  t.is(vqa.code, 0, vqa.stderr);
  // The fixture's val_source questions (generator 1.4.0, seed 3, 8 images) and their ten answers:
  const annotated = (annotations as unknown as { annotations: { question_id: number; answer_type: string; question_type: string; answers: { answer: string }[] }[] }).annotations;
  t.deepEqual(annotated.map((a) => [a.question_id, a.answer_type, a.answers.map((x) => x.answer).join('|')]), [
    [70, 'other', 'square|square|square|square|square|square|square|square|square|square'],
    [71, 'other', 'diamond|diamond|hexagon|diamond|diamond|a diamond|diamond|square|hexagon|diamond'],
    [72, 'other', 'purple.|purple.|purple|purple|purple|purple|purple|purple|purple|purple'],
    [73, 'number', '1|0|1|1|1|1|1|1|1|1'],
    [74, 'yes/no', 'no.|no|No|no|no|no|yes|No|no|no'],
    [75, 'yes/no', 'yes|yes|yes|yes|yes|yes|yes|yes|yes|yes'],
    [76, 'other', 'small|small|small|small|small|small|small|small|little|tiny'],
    [77, 'yes/no', 'no|no|no|no|no|no|no|no|no|no'],
    [78, 'yes/no', 'no|no.|no|no|no|no|no|no|no|nope'],
    [79, 'other', 'orange|purple|blue|orange.|orange|orange|Orange|orange|orange|orange'],
  ]);
  // Predicted: the multiple_choice_answer (square, diamond, purple, 1, no, yes, small, no, no,
  // orange). By the official definition, acc = mean over the 10 annotators i of
  // min(1, #{j ≠ i : answer_j == prediction} / 3):
  // - 70, 75, 77: all ten answers equal the prediction (not normalised): 9 others match for every i → 1.
  // - 71: answers differ, so all are normalised: "a diamond" loses its article → 7 × diamond,
  //   2 × hexagon, square. A diamond annotator has 6 matching others, the rest 7: min(1, 6/3) = 1 → 1.
  // - 72, 74, 78, 79: normalised, "purple." / "no." lose their period, "No" / "Orange" are
  //   lowercased → at least 8 answers equal the prediction, so every i has ≥ 7 matching others → 1.
  //   ("nope" stays "nope": a tenth answer that matches nothing.)
  // - 73: 9 × 1 and a 0 → 1; 76: 8 × small, little, tiny → 1 (no synonyms are merged).
  // Every question scores 100, so overall and every answer type are exactly 100.
  t.deepEqual(JSON.parse(vqa.stdout), {
    overall: 100,
    perAnswerType: { other: 100, number: 100, 'yes/no': 100 },
    perQuestionType: Object.fromEntries(annotated.map((a) => [a.question_type, 100])),
  });

  const questions = JSON.parse(await readFile(synthPaths.gqaQuestions(synth, 'val_source'), 'utf8')) as Record<string, { answer: string }>;
  const gqaPredictions = join(root, 'gqa-predictions.json');
  await writeFile(gqaPredictions, JSON.stringify(Object.entries(questions).map(([questionId, q]) => ({ questionId, prediction: q.answer }))));
  const gqa = await vlbench(['score', '--task', 'gqa', '--questions', synthPaths.gqaQuestions(synth, 'val_source'), '--predictions', gqaPredictions]);
  t.is(gqa.code, 0, gqa.stderr);
  t.is((JSON.parse(gqa.stdout) as { accuracy: number }).accuracy, 100);

  // Two wrong answers out of seven, so a scorer stuck at 100 (or one that normalises, or that
  // reads the wrong field) fails. The fixture's val_source questions, all balanced:
  t.deepEqual(Object.entries(questions).map(([id, q]) => [id, (q as unknown as { types: { structural: string } }).types.structural, q.answer, (q as unknown as { entailed: string[] }).entailed.join(',')]), [
    ['700', 'query', 'blue', '701,702'],
    ['701', 'verify', 'yes', '700,702'],
    ['702', 'choose', 'blue', '700,701'],
    ['703', 'query', 'square', '704'],
    ['704', 'verify', 'yes', '703'],
    ['705', 'logical', 'yes', ''],
    ['706', 'compare', 'no', ''],
  ]);
  const wrongGqa: Record<string, string> = { '701': 'no', '703': 'Square' };
  await writeFile(gqaPredictions, JSON.stringify(Object.entries(questions).map(([questionId, q]) => ({ questionId, prediction: wrongGqa[questionId] ?? q.answer }))));
  const gqaPartial = await vlbench(['score', '--task', 'gqa', '--questions', synthPaths.gqaQuestions(synth, 'val_source'), '--predictions', gqaPredictions]);
  t.is(gqaPartial.code, 0, gqaPartial.stderr);
  // eval.py: exact match, no normalisation ("Square" ≠ "square"), so 701 and 703 are wrong.
  // accuracy = 5/7 = 71.428… → 71.43; open = structural "query" (700 right, 703 wrong) → 1/2 = 50;
  // binary = every other structural type (701 wrong; 702, 704, 705, 706 right) → 4/5 = 80.
  // consistency: over the right answers with entailed questions other than themselves, the share of
  // those answered right: 700 → {701 ✗, 702 ✓} = 0.5, 702 → {700 ✓, 701 ✗} = 0.5, 704 → {703 ✗} = 0;
  // 705 and 706 entail nothing → mean(0.5, 0.5, 0) = 1/3 → 33.33.
  const gqaReport = JSON.parse(gqaPartial.stdout) as { accuracy: number; binary: number; open: number; consistency: number; accuracyPerStructuralType: Record<string, number> };
  t.is(gqaReport.accuracy, 71.43);
  t.is(gqaReport.open, 50);
  t.is(gqaReport.binary, 80);
  t.is(gqaReport.consistency, 33.33);

  // Discovery by split name in the SynthScenes folders resolves images that exist.
  const vqaSplit = await getTask('vqa').load({ dataDir: synthPaths.vqaDir(synth), split: 'val_source', imagesDir: synthPaths.imagesRoot(synth), splitLabel: 'val/source' });
  t.is(vqaSplit.split, 'val/source');
  const firstVqa = vqaSplit.examples[0] as { imagePath: string; imageId: number };
  t.is(firstVqa.imagePath, synthPaths.image(synth, 'val_source', firstVqa.imageId));
  await t.notThrowsAsync(readFile(firstVqa.imagePath));
  const gqaSplit = await getTask('gqa').load({ dataDir: synthPaths.gqaDir(synth), split: 'val_source', imagesDir: join(synthPaths.imagesRoot(synth), 'val_source') });
  await t.notThrowsAsync(readFile((gqaSplit.examples[0] as { imagePath: string }).imagePath));

  // VCR and retrieval go through the same generic path: predictions written by the tasks' own writers.
  const vcrSplit = (await getTask('vcr').load({ split: 'val_source', files: { annotations: synthPaths.vcrAnnotations(synth, 'val_source') } })) as LoadedSplit<VcrExample>;
  const oneHot = (index: number) => [0, 1, 2, 3].map((i) => (i === index ? 1 : 0));
  const vcrPredictions: VcrPredictions = new Map(vcrSplit.examples.map((example) => [example.id, {
    answer: oneHot(example.answerLabel!),
    rationaleGivenAnswer: [0, 1, 2, 3].map(() => oneHot(example.rationaleLabel!)),
  }]));
  const vcrCsv = join(root, 'vcr.csv');
  await getTask('vcr').writeSubmission(vcrSplit, vcrPredictions, vcrCsv);
  const vcr = await vlbench(['score', '--task', 'vcr', '--annotations', synthPaths.vcrAnnotations(synth, 'val_source'), '--predictions', vcrCsv]);
  t.is(vcr.code, 0, vcr.stderr);
  t.deepEqual(JSON.parse(vcr.stdout), { q2a: 100, qa2r: 100, q2ar: 100 });

  // The 12 examples of train_source, with predictions built so that Q→A, QA→R and Q→AR all differ.
  const vcrTrainFile = synthPaths.vcrAnnotations(synth, 'train_source');
  const vcrTrain = (await getTask('vcr').load({ split: 'train_source', files: { annotations: vcrTrainFile } })) as LoadedSplit<VcrExample>;
  t.deepEqual(vcrTrain.examples.map((example) => [example.answerLabel, example.rationaleLabel]), [
    [3, 2], [0, 1], [0, 2], [3, 3], [2, 2], [2, 0], [2, 2], [2, 2], [2, 1], [2, 1], [2, 2], [0, 3],
  ]);
  // Examples 0–2: wrong answer, right rationale given the GOLD answer (and a wrong one given the
  // predicted answer, so a scorer that conditions on the prediction loses them); 3–5: both right;
  // 6–11: right answer, wrong rationale.
  const answerRight = (index: number) => index >= 3;
  const rationaleRight = (index: number) => index <= 5;
  const wrong = (label: number) => (label + 1) % 4;
  const peaked = (index: number) => [0, 1, 2, 3].map((i) => (i === index ? 0.7 : 0.1));
  const vcrPartial: VcrPredictions = new Map(vcrTrain.examples.map((example, index) => {
    const gold = example.answerLabel!;
    const goldRationale = rationaleRight(index) ? example.rationaleLabel! : wrong(example.rationaleLabel!);
    const otherRationale = rationaleRight(index) ? wrong(example.rationaleLabel!) : example.rationaleLabel!;
    return [example.id, {
      answer: peaked(answerRight(index) ? gold : wrong(gold)),
      rationaleGivenAnswer: [0, 1, 2, 3].map((a) => peaked(a === gold ? goldRationale : otherRationale)),
    }];
  }));
  const vcrPartialCsv = join(root, 'vcr-train.csv');
  await getTask('vcr').writeSubmission(vcrTrain, vcrPartial, vcrPartialCsv);
  const vcrScored = await vlbench(['score', '--task', 'vcr', '--annotations', vcrTrainFile, '--predictions', vcrPartialCsv]);
  t.is(vcrScored.code, 0, vcrScored.stderr);
  // Q→A: 9/12 = 75; QA→R (given the gold answer): 6/12 = 50; Q→AR: both right, examples 3–5: 3/12 = 25.
  t.deepEqual(JSON.parse(vcrScored.stdout), { q2a: 75, qa2r: 50, q2ar: 25 });

  const retrievalFile = synthPaths.retrieval(synth, 'source');
  const retrievalSplit = (await getTask('retrieval').load({ split: 'test', files: { annotations: retrievalFile } })) as LoadedSplit<RetrievalImage>;
  const captionOwners = retrievalSplit.examples.flatMap((image, row) => image.captions.map(() => row));
  const rows = retrievalSplit.examples.length;
  const data = new Float32Array(rows * captionOwners.length);
  captionOwners.forEach((owner, column) => (data[owner * captionOwners.length + column] = 1));
  const npy = join(root, 'similarities.npy');
  await writeNpyMatrix(npy, { data, rows, cols: captionOwners.length });
  const retrieval = await vlbench(['score', '--task', 'retrieval', '--annotations', retrievalFile, '--split', 'test', '--similarities', npy]);
  t.is(retrieval.code, 0, retrieval.stderr);
  const recall = JSON.parse(retrieval.stdout) as { i2t: { r1: number }; t2i: { r1: number }; rsum: number };
  t.is(recall.i2t.r1, 100);
  t.is(recall.t2i.r1, 100);
  t.is(recall.rsum, 600);

  // The test split has one image, so every ranking there is trivially right. The train split's six
  // images × 30 captions (5 each, grouped) get a hand-made matrix with known ranks.
  const retrievalTrain = (await getTask('retrieval').load({ split: 'train', files: { annotations: retrievalFile } })) as LoadedSplit<RetrievalImage>;
  t.deepEqual(retrievalTrain.examples.map((image) => image.captions.length), [5, 5, 5, 5, 5, 5]);
  const trainCaptions = 30;
  const s = Array.from({ length: 6 }, () => new Array<number>(trainCaptions).fill(0));
  for (let image = 0; image < 6; image++) for (let c = 5 * image; c < 5 * image + 5; c++) s[image][c] = 0.5;
  // Image 0: its first four captions score 0.2, below 25 other captions at 0.3, but its fifth scores
  // 0.9: an image→text hit counts ANY of its captions, so rank 1 (a scorer using caption 0 says 26).
  for (let c = 0; c < trainCaptions; c++) s[0][c] = c < 4 ? 0.2 : c === 4 ? 0.9 : 0.3;
  for (const c of [10, 11]) s[1][c] = 0.8; // image 1: 2 other captions above its own → rank 3
  for (const c of [15, 16, 17, 18, 19, 20]) s[2][c] = 0.7; // image 2: 6 above → rank 7
  for (const c of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 25]) s[3][c] = 0.6; // image 3: 11 above → rank 12
  // Images 4 and 5: rank 1. Image→text ranks 1, 3, 7, 12, 1, 1:
  //   R@1 = 3/6 = 50, R@5 = 4/6, R@10 = 5/6 (×100).
  // Text→image, a caption's rank is 1 + the other images scoring it at or above its own image:
  //   captions 0–3 (0.2; image 3 gives 0.6), 5–9 (image 3), 10–11 (image 1), 15–20 (image 2) and 25
  //   (image 3) are at rank 2; caption 4 (0.9 beats image 3's 0.6), 12–14, 21–24 and 26–29 at rank 1.
  //   R@1 = 12/30 = 40, R@5 = R@10 = 100.
  const trainNpy = join(root, 'similarities-train.npy');
  await writeNpyMatrix(trainNpy, { data: Float32Array.from(s.flat()), rows: 6, cols: trainCaptions });
  const retrievalPartial = await vlbench(['score', '--task', 'retrieval', '--annotations', retrievalFile, '--split', 'train', '--similarities', trainNpy]);
  t.is(retrievalPartial.code, 0, retrievalPartial.stderr);
  const partial = JSON.parse(retrievalPartial.stdout) as { i2t: Record<string, number>; t2i: Record<string, number>; rsum: number };
  t.deepEqual(partial.i2t, { r1: 50, r5: (100 * 4) / 6, r10: (100 * 5) / 6 });
  t.deepEqual(partial.t2i, { r1: 40, r5: 100, r10: 100 });
  t.true(Math.abs(partial.rsum - 440) < 1e-9, `rsum ${partial.rsum}`);
});
