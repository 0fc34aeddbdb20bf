import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import {
  ATTEMPT_NAMES,
  BACKEND_CHOICES,
  BackendRefusedError,
  SELECTION_PLANS,
  choiceOfBackend,
  parseBackendChoice,
  selectBackend,
  type AttemptName,
  type BackendAttemptFunction,
} from '../../models/backends/select.ts';
import { BACKEND_NAMES } from '../../core/types.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import type { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';

// Every test here switches the process's one current backend: they run one after another.

test.serial('auto never picks the plain CPU backend', async (t) => {
  const backend = await selectBackend('auto');
  t.not(backend.name, 'cpu');
  t.is(tf.getBackend(), backend.name === 'tensorflow-gpu' ? 'tensorflow' : backend.name);
  t.true(backend.attempts.at(-1)!.ok);
  // every backend tried before the winner says why it was skipped
  for (const attempt of backend.attempts.slice(0, -1)) t.false(attempt.ok), t.true(attempt.reason.length > 0);
});

test.serial('cpu asked for by name, then auto, in one process: auto does not keep the plain CPU backend', async (t) => {
  const cpu = await selectBackend('cpu');
  t.is(cpu.name, 'cpu');
  t.is(tf.getBackend(), 'cpu');
  // Run-pool workers run several jobs in one process: the second job's auto must choose again.
  const auto = await selectBackend('auto');
  t.not(auto.name, 'cpu');
  t.not(tf.getBackend(), 'cpu');
  t.is(auto.attempts.filter((a) => a.ok).length, 1);
});

test.serial('wasm is picked when asked for by name, and auto after it chooses again', async (t) => {
  const wasm = await selectBackend('wasm');
  t.is(wasm.name, 'wasm');
  t.is(tf.getBackend(), 'wasm');
  t.deepEqual(wasm.attempts.map((a) => a.backend), ['wasm']);
  // Choosing again means running auto's whole plan from its first step, not handing back the
  // wasm just chosen: the attempts are a prefix of auto's plan, in order, ending at the first
  // that worked, and that backend is the current one.
  const auto = await selectBackend('auto');
  const planned = SELECTION_PLANS.auto.slice(0, auto.attempts.length).map((step) => (step.startsWith('webgpu') ? 'webgpu' : step));
  t.deepEqual(auto.attempts.map((a) => a.backend), planned);
  t.is(auto.attempts[0].backend, 'tensorflow-gpu');
  t.deepEqual(auto.attempts.map((a) => a.ok), [...auto.attempts.slice(1).map(() => false), true]);
  t.is(auto.name, auto.attempts.at(-1)!.backend);
  t.is(tf.getBackend(), auto.name === 'tensorflow-gpu' ? 'tensorflow' : auto.name);

  // The same, whatever this machine has: every step before wasm fails, and each of them runs once
  // more although wasm was just chosen by name.
  await selectBackend('wasm');
  const { attempts, calls } = everythingFails();
  const beforeWasm = SELECTION_PLANS.auto.slice(0, SELECTION_PLANS.auto.indexOf('wasm'));
  const failing = Object.fromEntries(beforeWasm.map((step) => [step, attempts[step]]));
  const again = await selectBackend('auto', { attempts: failing });
  t.is(again.name, 'wasm');
  t.deepEqual(again.attempts.map((a) => [a.backend, a.ok]), [...beforeWasm.map((step) => [step.startsWith('webgpu') ? 'webgpu' : step, false]), ['wasm', true]]);
  t.deepEqual(Object.fromEntries(calls), Object.fromEntries(beforeWasm.map((step) => [step, 1])));
});

/** Attempt functions that all fail, each with its own reason, counting how often each ran. */
function everythingFails(): { attempts: Record<AttemptName, BackendAttemptFunction>; calls: Map<AttemptName, number> } {
  const calls = new Map<AttemptName, number>();
  const attempts = Object.fromEntries(
    ATTEMPT_NAMES.map((name) => [
      name,
      async () => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return { backend: name.startsWith('webgpu') ? 'webgpu' : name, ok: false, reason: `${name} broken by the test` } as const;
      },
    ]),
  ) as Record<AttemptName, BackendAttemptFunction>;
  return { attempts, calls };
}

test.serial('when every backend fails, auto refuses with each reason and never falls to cpu', async (t) => {
  await selectBackend('wasm');
  const { attempts, calls } = everythingFails();
  const error = await t.throwsAsync(selectBackend('auto', { attempts }), { instanceOf: BackendRefusedError });
  // One failed attempt per step of auto's plan, in order, each with its own reason.
  const expected = SELECTION_PLANS.auto.map((step) => [step.startsWith('webgpu') ? 'webgpu' : step, `${step} broken by the test`]);
  t.deepEqual(
    error!.attempts.map((a) => [a.backend, a.reason]),
    expected,
  );
  t.is(
    error!.message,
    `no usable tfjs backend for --backend auto: ${expected.map(([backend, reason]) => `${backend}: ${reason}`).join('; ')} ` +
      '(the plain CPU backend and software WebGPU adapters are never picked silently; pass --backend cpu or --backend webgpu to use them)',
  );
  t.is(calls.get('cpu'), undefined, 'the cpu attempt never ran');
  t.is(calls.get('webgpu'), undefined, 'the any-adapter webgpu attempt (software included) never ran');
  t.is(calls.get('webgpu-software'), undefined);
  t.is(tf.getBackend(), 'wasm', 'a refusal leaves the current backend as it was');
});

test.serial('an attempt that throws counts as a failed attempt with its message', async (t) => {
  const { attempts } = everythingFails();
  attempts.wasm = async () => {
    throw new Error('wasm binary missing\nstack...');
  };
  const error = await t.throwsAsync(selectBackend('auto', { attempts }), { instanceOf: BackendRefusedError });
  t.deepEqual(error!.attempts.at(-1), { backend: 'wasm', ok: false, reason: 'failed: wasm binary missing' });
});

test.serial('the first attempt that works wins and the later ones are not tried', async (t) => {
  const { attempts, calls } = everythingFails();
  attempts.tensorflow = async () => ({ backend: 'tensorflow', ok: true, reason: 'stand-in' });
  const selected = await selectBackend('auto', { attempts });
  t.is(selected.name, 'tensorflow');
  t.is(selected.attempts.length, 3);
  t.is(calls.get('wasm'), undefined);
});

test('auto tries the GPU paths first, plain wasm last, and neither the plain CPU backend nor a software adapter', (t) => {
  const auto = SELECTION_PLANS.auto;
  t.deepEqual(auto.slice(0, 2), ['tensorflow-gpu', 'webgpu-hardware']);
  t.true(auto.indexOf('tensorflow') > 1);
  t.is(auto.at(-1), 'wasm');
  for (const step of ['cpu', 'webgpu', 'webgpu-software'] as const) t.false(auto.includes(step), step);
  t.deepEqual(SELECTION_PLANS.cpu, ['cpu']);
  t.deepEqual(SELECTION_PLANS.webgpu, ['webgpu']);
  t.deepEqual(SELECTION_PLANS['webgpu-software'], ['webgpu-software']);
  for (const choice of BACKEND_CHOICES) t.true(SELECTION_PLANS[choice].length > 0, choice);
});

test('an unknown backend name is refused with the list of choices', (t) => {
  const error = t.throws(() => parseBackendChoice('gpu'));
  t.is(error!.message, `--backend "gpu" is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  t.regex(error!.message, /expected one of auto, tensorflow, webgpu, webgpu-software, .*wasm, cpu$/);
});

test.serial('an encoder given the backend the process selected computes on it without selecting again', async (t) => {
  const selected = await selectBackend('wasm');
  let selections = 0;
  const attempts = Object.fromEntries(ATTEMPT_NAMES.map((name) => [name, async () => (selections++, { backend: 'cpu' as const, ok: false, reason: 'not to be tried' })]));
  // Were it to select, a selection with these attempts would fail; the encoder must use `selected` as it is.
  await t.throwsAsync(selectBackend('wasm', { attempts }));
  t.is(selections, 1);
  const encoder = (await loadEncoder(new URL('../fixtures/clip-tiny', import.meta.url).pathname, { backend: selected })) as TfjsClipEncoder;
  try {
    t.is(encoder.selectedBackend, selected);
    t.is(encoder.backend, 'wasm');
    t.is(tf.getBackend(), 'wasm');
  } finally {
    await encoder.dispose();
  }
});

test('every recorded tfjs backend name is asked for by one --backend choice; ONNX Runtime by none', (t) => {
  t.is(choiceOfBackend('tensorflow-gpu'), 'tensorflow');
  t.is(choiceOfBackend('wasm-blas'), 'wasm-blas');
  t.is(choiceOfBackend('onnxruntime'), undefined);
  for (const name of BACKEND_NAMES.filter((n) => n !== 'onnxruntime')) t.truthy(choiceOfBackend(name), name);
  t.deepEqual(BACKEND_CHOICES, Object.keys(SELECTION_PLANS));
});
