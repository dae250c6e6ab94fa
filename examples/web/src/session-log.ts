/** Where the log is kept: `sessionStorage` in the page (one tab, kept across its reloads). */
export interface LogStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** What the page keeps of one event of `sessionContextChanged`. */
export interface LogEntry {
  readonly type: "UPDATED" | "DELETED";
  readonly version: number;
  readonly operation: string | null;
  /** The top-level fields the write was given (its `change`), for a one-line summary. */
  readonly changed: readonly string[];
  /** The text of the message the write added to `recentInteractions`, when it added one this page can show. */
  readonly note?: string;
  readonly resync: boolean;
  /** Which load of the page received it (1 = the first; each reload adds one). */
  readonly load: number;
}

/** The event as the subscription delivers it (the fields the log needs). */
export interface SessionEventLike {
  readonly type: "UPDATED" | "DELETED";
  readonly version: number;
  readonly operation?: string | null;
  readonly change?: Record<string, unknown> | null;
  readonly resync: boolean;
}

/** What the log says about the versions it holds, for the person looking at the page. */
export interface LogCheck {
  /** First and last version of the current run (since the last deletion or resync); null when empty. */
  readonly from: number | null;
  readonly to: number | null;
  /** Versions a run skipped: always empty when the server keeps its promise. */
  readonly missing: readonly number[];
  /** Events dropped because their version was already there (a reconnect that replays from an older version). */
  readonly repeats: number;
}

interface Saved {
  lastVersion: number | null;
  load: number;
  repeats: number;
  entries: LogEntry[];
}

/** The most entries kept: the page shows a session's recent changes, not an unbounded list. */
const MAX_ENTRIES = 500;

/**
 * The changes of one session this browser tab has received, kept in `sessionStorage` so that a reload continues
 * where it stopped: `afterVersion` is the version to pass to `sessionContextChanged(afterVersion:)` when the page
 * (re)subscribes, and the server replays from there, so nothing written while the page was away is missed.
 *
 * `accept` drops an event whose version the tab already has (graphql-ws resubscribes after a lost socket with the
 * variables the subscription started with, so the replay can start behind what the tab has). A DELETED event ends
 * the session's run: the next write creates the session again at version 1.
 */
export class SessionLog {
  private saved: Saved;
  private readonly listeners = new Set<() => void>();

  /** Loads the tab's log for `key` and counts this page load. */
  constructor(
    private readonly storage: LogStorage,
    private readonly key: string,
  ) {
    this.saved = parse(storage.getItem(key));
    this.saved = { ...this.saved, load: this.saved.load + 1 };
    this.save();
  }

  /** The version to resume after: the last one received, or 0 (the whole kept history) when there is none. */
  get afterVersion(): number {
    return this.saved.lastVersion ?? 0;
  }

  get load(): number {
    return this.saved.load;
  }

  /** The entries, oldest first, and the repeats dropped: the same object until something changes (for React). */
  readonly snapshot = (): { readonly entries: readonly LogEntry[]; readonly repeats: number } => this.saved;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Records `event` unless the tab already has its version; says whether it was new. */
  accept(event: SessionEventLike): boolean {
    const { lastVersion } = this.saved;
    if (event.type === "UPDATED" && lastVersion !== null && event.version <= lastVersion) {
      this.update({ repeats: this.saved.repeats + 1 });
      return false;
    }
    const entry: LogEntry = {
      type: event.type,
      version: event.version,
      operation: event.operation ?? null,
      changed: Object.keys(event.change ?? {}),
      note: firstMessage(event.change?.recentInteractions),
      resync: event.resync,
      load: this.saved.load,
    };
    this.update({
      // After a deletion the session starts again at version 1.
      lastVersion: event.type === "DELETED" ? 0 : event.version,
      entries: [...this.saved.entries, entry].slice(-MAX_ENTRIES),
    });
    return true;
  }

  /** The current run's range and any version it skipped. */
  check(): LogCheck {
    let from: number | null = null;
    let to: number | null = null;
    let missing: number[] = [];
    for (const entry of this.saved.entries) {
      if (entry.type === "DELETED" || entry.resync || to === null) {
        // A deletion ends a run; a resync or the first entry starts one at its own version.
        [from, to, missing] = entry.type === "DELETED" ? [null, null, []] : [entry.version, entry.version, []];
        continue;
      }
      for (let version = to + 1; version < entry.version; version++) missing.push(version);
      to = entry.version;
    }
    return { from, to, missing, repeats: this.saved.repeats };
  }

  private update(change: Partial<Saved>): void {
    this.saved = { ...this.saved, ...change };
    this.save();
    for (const listener of this.listeners) listener();
  }

  private save(): void {
    this.storage.setItem(this.key, JSON.stringify(this.saved));
  }
}

function firstMessage(added: unknown): string | undefined {
  const first: unknown = Array.isArray(added) ? added[0] : undefined;
  const text = typeof first === "object" && first !== null ? (first as { text?: unknown }).text : undefined;
  return typeof text === "string" ? text : undefined;
}

function parse(text: string | null): Saved {
  const empty: Saved = { lastVersion: null, load: 0, repeats: 0, entries: [] };
  if (text === null) return empty;
  try {
    const saved = JSON.parse(text) as Partial<Saved>;
    return { ...empty, ...saved, entries: Array.isArray(saved.entries) ? saved.entries : [] };
  } catch {
    return empty;
  }
}
