/**
 * Retrying a server that does not answer yet, for a bounded time in all: the one policy of every
 * command that connects to Redis or PostgreSQL before its work (harness/preflight.ts,
 * leaderboard/store.ts).
 */

/**
 * How long a command keeps trying a server that does not answer, in all: long enough for one that
 * is starting (a compose file bringing Redis up beside the workers), short enough that a wrong URL
 * is said within seconds instead of a hang.
 */
export const CONNECT_BUDGET_MS = 4_000;
const FIRST_RETRY_MS = 250;
const LONGEST_RETRY_MS = 2_000;

/**
 * `attempt` until it succeeds, retrying the errors `transient` accepts with a doubling pause, for at
 * most `budgetMs` in all (an attempt that hangs is cut off at the budget: `timedOut` says what to
 * throw, and whatever it yields later is handed to `discard`). Other errors are thrown at once.
 */
export async function withConnectRetries<T>(options: {
  attempt: () => Promise<T>;
  transient: (error: unknown) => boolean;
  timedOut: (seconds: number) => Error;
  discard: (value: T) => Promise<void> | void;
  budgetMs?: number;
}): Promise<T> {
  const budget = options.budgetMs ?? CONNECT_BUDGET_MS;
  const deadline = Date.now() + budget;
  let pause = FIRST_RETRY_MS;
  for (;;) {
    const pending = options.attempt();
    let timer: NodeJS.Timeout | undefined;
    const cutOff = new Promise<'cut off'>((done) => (timer = setTimeout(() => done('cut off'), Math.max(0, deadline - Date.now()))));
    const outcome = await Promise.race([pending.then((value) => ({ value }), (error: unknown) => ({ error })), cutOff]).finally(() => clearTimeout(timer));
    if (outcome === 'cut off') {
      pending.then((value) => options.discard(value), () => undefined);
      throw options.timedOut(budget / 1000);
    }
    if (!('error' in outcome)) return outcome.value;
    if (!options.transient(outcome.error) || Date.now() + pause >= deadline) throw outcome.error;
    await new Promise((done) => setTimeout(done, pause));
    pause = Math.min(pause * 2, LONGEST_RETRY_MS);
  }
}
