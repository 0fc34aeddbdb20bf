import test from 'ava';
import { withConnectRetries } from '../../core/connect-retries.ts';

class Refused extends Error {}

test('transient failures are retried with pauses until the attempt succeeds within the budget', async (t) => {
  const times: number[] = [];
  const started = Date.now();
  const value = await withConnectRetries({
    attempt: async () => {
      times.push(Date.now() - started);
      if (times.length < 3) throw new Refused('connect ECONNREFUSED');
      return 'connected';
    },
    transient: (error) => error instanceof Refused,
    timedOut: () => new Error('timed out'),
    discard: () => undefined,
    budgetMs: 3_000,
  });
  t.is(value, 'connected');
  t.is(times.length, 3);
  t.true(times[1] >= 200 && times[2] - times[1] >= 400, `attempts at ${times.join(', ')} ms: the pause doubles`);
});

test('a failure that is not transient is thrown at once; a server that never answers, at the end of the budget', async (t) => {
  let attempts = 0;
  await t.throwsAsync(
    withConnectRetries({ attempt: async () => (attempts++, Promise.reject(new Error('password authentication failed'))), transient: (error) => error instanceof Refused, timedOut: () => new Error('timed out'), discard: () => undefined, budgetMs: 3_000 }),
    { message: 'password authentication failed' },
  );
  t.is(attempts, 1);

  const started = Date.now();
  await t.throwsAsync(withConnectRetries({ attempt: async () => Promise.reject(new Refused('connect ECONNREFUSED')), transient: (error) => error instanceof Refused, timedOut: () => new Error('timed out'), discard: () => undefined, budgetMs: 1_000 }), { message: 'connect ECONNREFUSED' });
  t.true(Date.now() - started <= 1_100, 'gave up within the budget, with the last error');

  // An attempt that hangs is cut off at the budget; what it yields later is discarded.
  let discarded = false;
  let resolveLate: (value: string) => void = () => undefined;
  const hanging = withConnectRetries({ attempt: () => new Promise<string>((resolve) => (resolveLate = resolve)), transient: () => true, timedOut: (seconds) => new Error(`no answer in ${seconds} s`), discard: () => void (discarded = true), budgetMs: 300 });
  await t.throwsAsync(hanging, { message: 'no answer in 0.3 s' });
  resolveLate('late connection');
  await new Promise((resolve) => setImmediate(resolve));
  t.true(discarded);
});
