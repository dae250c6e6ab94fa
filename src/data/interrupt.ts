/**
 * Ctrl-C (SIGINT) or SIGTERM asks a command to stop after the batch it is on: it saves where it is and exits 130,
 * and the same command run again goes on from there. A second signal exits at once (the last saved state still
 * holds: every batch is written whole or not at all).
 */
export interface Interrupt {
  readonly requested: boolean;
  /** Asks the command to stop (a signal does this; tests call it). */
  request(): void;
}

export function createInterrupt(): Interrupt {
  let requested = false;
  return {
    get requested() {
      return requested;
    },
    request() {
      requested = true;
    },
  };
}

/** Wires SIGINT and SIGTERM to `interrupt`; returns a function that unwires them. */
export function onSignals(interrupt: Interrupt, say: (line: string) => void): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (interrupt.requested) process.exit(130);
    say(`${signal}: stopping after the current batch (again to stop at once)`);
    interrupt.request();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** The process exit code of a run that was interrupted (128 + SIGINT), as shells report Ctrl-C. */
export const INTERRUPTED_EXIT_CODE = 130;
