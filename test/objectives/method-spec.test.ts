import test from 'ava';
import { InputError } from '../../core/errors.ts';
import { ADVERSARIAL_DEFAULTS } from '../../models/objectives/adversarial.ts';
import { describeObjectiveSettings, OBJECTIVE_DEFAULTS, objectiveReportLines, objectiveSettings, parseMethodSpec, resolveObjectivesForRun } from '../../models/objectives/index.ts';
import { parseSetOptions } from '../../cli/flags.ts';

test('a SPEC parses into the base and typed objectives in canonical order', (t) => {
  const method = parseMethodSpec('ft+dann+adv+sg');
  t.is(method.spec, 'ft+sg+adv+dann');
  t.is(method.base, 'ft');
  t.deepEqual(method.objectives.map((o) => o.name), ['sg', 'adv', 'dann']);
  t.deepEqual(objectiveSettings(method, 'adv'), ADVERSARIAL_DEFAULTS);
  t.is(objectiveSettings(method, 'mmd'), undefined);
  t.deepEqual(parseMethodSpec(' zeroshot ').objectives, []);
  t.is(parseMethodSpec('mmd+ft').spec, 'ft+mmd');
});

test('settings go to their objective; others are handed back for the training loop', (t) => {
  const method = parseMethodSpec('ft+sg+adv', { 'adv.eta': '0.01', 'adv.modality': 'both', 'sg.lambda': '0.5', 'infonce.learnableScale': 'false', lr: '1e-4', 'train.epochs': '3' });
  t.is(objectiveSettings(method, 'adv')?.eta, 0.01);
  t.is(objectiveSettings(method, 'adv')?.modality, 'both');
  t.is(objectiveSettings(method, 'sg')?.lambda, 0.5);
  t.false(method.taskLoss.infonce.learnableScale);
  t.is(method.taskLoss.mc.labelSmoothing, 0);
  t.deepEqual(method.otherSettings, { lr: '1e-4', 'train.epochs': '3' });
});

test('bad SPECs are refused with the known names', (t) => {
  const error = t.throws(() => parseMethodSpec('ft+villa'), { instanceOf: InputError });
  t.regex(error!.message, /--method.*unknown objective "villa".*known: ft, zeroshot, sg, adv, mmd, dann/);
  t.throws(() => parseMethodSpec('ft+sg+sg'), { message: /"sg" appears twice/ });
  t.throws(() => parseMethodSpec('sg+adv'), { message: /exactly one base.*got none/ });
  t.throws(() => parseMethodSpec('ft+zeroshot'), { message: /exactly one base.*ft and zeroshot/ });
  t.throws(() => parseMethodSpec('zeroshot+mmd'), { message: /zeroshot trains nothing.*ft\+mmd/ });
  t.throws(() => parseMethodSpec('ft++sg'), { message: /empty part/ });
  t.throws(() => parseMethodSpec(''), { message: /empty part/ });
  t.throws(() => parseMethodSpec('FT'), { message: /unknown objective "FT"/ });
});

test('a setting for an objective the SPEC lacks is refused, not ignored', (t) => {
  t.throws(() => parseMethodSpec('ft+sg', { 'adv.eta': '0.1' }), { message: /adv\.eta given, but method "ft\+sg" has no adv objective/ });
  t.throws(() => parseMethodSpec('ft+adv', { 'adv.etta': '0.1' }), { message: /unknown setting "etta".*known keys: steps, eta/ });
  t.throws(() => parseMethodSpec('ft', { 'mc.smoothing': '0.1' }), { message: /--set mc\.smoothing/ });
});

test('--set options become a record; malformed and repeated keys are refused', (t) => {
  t.deepEqual(parseSetOptions(['adv.eta=0.01', 'sg.lambda=0.5', 'note=a=b']), { 'adv.eta': '0.01', 'sg.lambda': '0.5', note: 'a=b' });
  t.throws(() => parseSetOptions(['adv.eta']), { message: /expected key=value/ });
  t.throws(() => parseSetOptions(['=3']), { message: /expected key=value/ });
  t.throws(() => parseSetOptions(['adv.eta=1', 'adv.eta=2']), { message: /"adv\.eta" is set twice/ });
});

test('every objective documents its defaults', (t) => {
  t.deepEqual(Object.keys(OBJECTIVE_DEFAULTS), ['sg', 'adv', 'mmd', 'dann', 'infonce', 'bce', 'mc']);
  t.deepEqual(OBJECTIVE_DEFAULTS.mmd.kernelMultipliers, [0.125, 0.25, 0.5, 1, 2]);
  t.is(OBJECTIVE_DEFAULTS.dann.gamma, 10);
});

test('every --set key is documented with its default', (t) => {
  const rows = describeObjectiveSettings();
  const eta = rows.find((row) => row.key === 'adv.eta');
  t.is(eta?.default, 1e-2);
  t.true(rows.every((row) => row.doc.length > 10));
  t.true(rows.some((row) => row.key === 'sg.lambda') && rows.some((row) => row.key === 'mmd.kernelMultipliers'));
});

test('an objective resolves its settings against the run: adv.at auto follows the encoder, and places inside a frozen encoder are refused', (t) => {
  const at = (trainBlocks: number | 'all', sets: Record<string, string> = {}) =>
    objectiveSettings(resolveObjectivesForRun(parseMethodSpec('ft+sg+adv', sets), { encoderTrains: trainBlocks !== 0, trainBlocks }), 'adv')?.at;
  t.is(at(0), 'fusion');
  t.is(at(1), 'boundary');
  t.is(at('all'), 'input');
  t.is(at(1, { 'adv.at': 'fusion' }), 'fusion');
  t.throws(() => at(0, { 'adv.at': 'boundary' }), { message: /adv\.at=boundary perturbs inside the encoder, which is frozen/ });
  t.throws(() => at(1, { 'adv.at': 'input' }), { message: /adv\.at=input perturbs the word and patch embeddings/ });
  // Objectives without the hook keep their settings as parsed.
  const method = resolveObjectivesForRun(parseMethodSpec('ft+sg', { 'sg.lambda': '0.5' }), { encoderTrains: true, trainBlocks: 1 });
  t.is(objectiveSettings(method, 'sg')?.lambda, 0.5);
});

test('each objective reports what it did from the curve, and an inert one ends with a warning', (t) => {
  const method = parseMethodSpec('ft+sg+adv+mmd+dann', { 'dann.weight': '0' });
  const curve = Array.from({ length: 20 }, (_, i) => ({ sg: 2 - i / 20, adv_kl: 1e-8, adv_delta_text: 0.02, adv_delta_image: 0.02, mmd: 0.1, mmd2: 0.5 - i / 50, dann: 0.69, dann_accuracy: 0.5 + i / 100 }));
  const { summaries, warnings } = objectiveReportLines(method, curve);
  t.deepEqual(summaries.map((line) => line.split(':')[0]), ['sg', 'adv', 'mmd', 'dann']);
  // Start and end: the means of the first and last tenth of the steps.
  t.regex(summaries[2], /^mmd: MMD² 0\.490 at the start → 0\.130 at the end/);
  t.regex(summaries[3], /^dann: discriminator accuracy 0\.505 at the start → 0\.685 at the end/);
  t.regex(summaries[1], /^adv: ‖δ‖\/‖x‖ text 0\.0200, image 0\.0200; KL term mean 1\.0e-8/);
  t.deepEqual(warnings.map((line) => line.split(':').slice(0, 2).join(':')), ['warning: adv stayed inert', 'warning: dann stayed inert']);
  t.deepEqual(objectiveReportLines(method, []), { summaries: [], warnings: [] });
});
