import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { demoPlan, demoStartOrder } from '../../harness/demo.ts';
import { vlbench } from '../support/cli-in-process.ts';

const runs = (plan: ReturnType<typeof demoPlan>) => plan.map((run) => `${run.task} ${run.label}`);

test('the default demo runs ft alone on VQA (no tuned run: its object crops come from the frozen encoder), VCR without its two adv runs, then ft with the last block tuned', (t) => {
  t.deepEqual(runs(demoPlan({ tasks: ['vqa', 'vcr', 'retrieval'] })), [
    'vqa ft',
    'vcr ft', 'vcr ft+sg', 'vcr ft+mmd', 'vcr ft+dann', 'vcr ft, encoder tuned (last 1 block)',
    'retrieval zeroshot', 'retrieval ft', 'retrieval ft, encoder tuned (last 1 block)',
  ]);
  const tuned = demoPlan({ tasks: ['vcr'] }).at(-1)!;
  t.deepEqual(tuned.sets, { 'encoder.train_blocks': '1' });
});

test('--methods applies to VQA and VCR alike (adv on VCR when asked), and --encoder-blocks 0 leaves out the tuned runs', (t) => {
  t.deepEqual(runs(demoPlan({ tasks: ['vqa', 'vcr'], methods: ['ft', 'ft+adv'], encoderBlocks: 2 })), [
    'vqa ft', 'vqa ft+adv', 'vcr ft', 'vcr ft+adv', 'vcr ft, encoder tuned (last 2 blocks)',
  ]);
  t.deepEqual(runs(demoPlan({ tasks: ['vcr'], methods: ['ft+adv'], encoderBlocks: 0 })), ['vcr ft+adv']);
});

test('the demo starts its first run alone, then the runs that tune encoder blocks (the longest), then the rest in plan order', (t) => {
  const plan = demoPlan({ tasks: ['vcr', 'retrieval'], methods: ['ft', 'ft+mmd'] });
  t.deepEqual(runs(plan), ['vcr ft', 'vcr ft+mmd', 'vcr ft, encoder tuned (last 1 block)', 'retrieval zeroshot', 'retrieval ft', 'retrieval ft, encoder tuned (last 1 block)']);
  t.deepEqual(demoStartOrder(plan), [0, 2, 5, 1, 3, 4]);
  t.deepEqual(demoStartOrder([]), []);
});

test('a task without a demo recipe (VizWiz: no SynthScenes data) is refused by name, not crashed on', async (t) => {
  t.throws(() => demoPlan({ tasks: ['vizwiz'] }), { instanceOf: InputError, message: /the demo has no recipe for "vizwiz"; it runs vqa, vcr, retrieval/ });
  const { code, stderr } = await vlbench(['demo', '--tasks', 'vizwiz', '--out', join(tmpdir(), 'vlbench-demo-never-written')]);
  t.is(code, 2);
  t.regex(stderr, /--tasks: unknown vizwiz; the demo runs vqa, vcr, retrieval/);
});
