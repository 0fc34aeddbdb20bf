import test from 'ava';
import { parseBackendChoice, selectBackend } from '../../models/backends/select.ts';

test('auto never picks the plain CPU backend', async (t) => {
  const backend = await selectBackend('auto');
  t.not(backend.name, 'cpu');
  t.true(backend.attempts.at(-1)!.ok);
  // every backend tried before the winner says why it was skipped
  for (const attempt of backend.attempts.slice(0, -1)) t.false(attempt.ok), t.true(attempt.reason.length > 0);
});

test('wasm is picked when asked for by name', async (t) => {
  const backend = await selectBackend('wasm');
  t.is(backend.name, 'wasm');
});

test('an unknown backend name is refused with the list of choices', (t) => {
  const error = t.throws(() => parseBackendChoice('gpu'));
  t.regex(error!.message, /--backend "gpu" is not a backend; expected one of auto, tensorflow, wasm, cpu/);
});
