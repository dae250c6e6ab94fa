/**
 * Resolves once `done()` answers true; rejects after `timeoutMs`. A check that throws (a node restarting, a slot
 * moving) counts as "not yet". The interval only paces the questions: the wait ends at the event, not at a sleep.
 */
export async function pollUntil(
  done: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A node restarting or a slot moving makes a check throw: ask again until the deadline.
    const ok = await done().catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
