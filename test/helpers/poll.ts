import { inspect } from "node:util";

/** How long a poll may take and how often it asks. */
export interface PollTiming {
  /** Reject once this many milliseconds have passed without an accepted answer. */
  readonly timeoutMs: number;
  /** Milliseconds between two questions; default 50. It only paces them: the wait ends at the first accepted answer. */
  readonly intervalMs?: number;
}

/**
 * The one poller of the tests: asks until the answer is accepted, for state that announces no event of its own
 * (Redis's data, clock or replication, an HTTP endpoint, a client's queue). Where an event exists (a log line, a
 * process exit), wait for the event instead.
 *
 * Two forms:
 * - `pollUntil(what, check, timing)`: until `check()` answers true;
 * - `pollUntil(what, probe, accept, timing)`: until `accept(await probe())`, resolving with that answer.
 *
 * A question that throws (a node restarting, a slot moving, Redis asleep) counts as "not yet". It is asked at least
 * once; past `timing.timeoutMs` the poll rejects with an error naming `what` it waited for and the last answer or
 * error it saw. A question that never settles is not cut short: give it a timeout of its own (a fetch signal, a
 * client's command timeout).
 */
export function pollUntil(what: string, check: () => boolean | Promise<boolean>, timing: PollTiming): Promise<void>;
export function pollUntil<T>(
  what: string,
  probe: () => T | Promise<T>,
  accept: (answer: T) => boolean,
  timing: PollTiming,
): Promise<T>;
export async function pollUntil<T>(
  what: string,
  probe: () => T | Promise<T>,
  acceptOrTiming: ((answer: T) => boolean) | PollTiming,
  timingIfAccept?: PollTiming,
): Promise<T | void> {
  const [accept, timing] =
    typeof acceptOrTiming === "function"
      ? [acceptOrTiming, timingIfAccept!]
      : [(answer: T) => answer === true, acceptOrTiming];
  const { timeoutMs, intervalMs = 50 } = timing;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      const answer = await probe();
      if (accept(answer)) return answer;
      last = `last answer: ${inspect(answer, { depth: 4, breakLength: Infinity })}`;
    } catch (error) {
      last = `last error: ${error instanceof Error ? error.message : inspect(error)}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}; ${last}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
