import type { SessionChange } from "./session-change";

/** Receives one user's session changes. */
export interface SessionChangeListener {
  change(change: SessionChange): void;
  /**
   * Changes may have been lost (the feed's connection to Redis dropped and is back): whoever follows a session
   * should read where it stands now. Pub/sub is fire-and-forget; this is how a subscriber notices.
   */
  missed(): void;
}

/**
 * Where a server process hears about session writes and deletions, its own and every other replica's: Redis pub/sub
 * (a shard channel per user, on the tenant's slot) or, for the embedded store, the store itself in-process.
 */
export interface SessionChangeFeed {
  /**
   * Starts delivering one user's changes to `listener`. Resolves once every change committed from then on will reach
   * it; rejects with ServiceUnavailableError when the feed cannot subscribe. The function it resolves with stops it.
   */
  listen(tenantId: string, userId: string, listener: SessionChangeListener): Promise<() => void>;
  /** Stops every subscription and closes the feed's connection. */
  close(): Promise<void>;
}

/**
 * Listeners by (tenant, user), for one process: what the embedded store announces to directly, and what the Redis
 * feed hands each message to once it has decoded it.
 */
export class LocalChangeFanout {
  private readonly listeners = new Map<string, Set<SessionChangeListener>>();

  /** Adds a listener; true when it is the first of its (tenant, user). */
  add(channel: string, listener: SessionChangeListener): boolean {
    let set = this.listeners.get(channel);
    const first = set === undefined;
    if (set === undefined) this.listeners.set(channel, (set = new Set()));
    set.add(listener);
    return first;
  }

  /** Removes a listener; true when it was the last of its (tenant, user). */
  remove(channel: string, listener: SessionChangeListener): boolean {
    const set = this.listeners.get(channel);
    if (set === undefined || !set.delete(listener)) return false;
    if (set.size > 0) return false;
    this.listeners.delete(channel);
    return true;
  }

  has(channel: string): boolean {
    return this.listeners.has(channel);
  }

  channels(): string[] {
    return [...this.listeners.keys()];
  }

  publish(channel: string, change: SessionChange): void {
    for (const listener of this.listeners.get(channel) ?? []) listener.change(change);
  }

  /** Tells every listener (or those of one channel) that changes may have been lost. */
  missed(channel?: string): void {
    const sets = channel === undefined ? [...this.listeners.values()] : [this.listeners.get(channel) ?? new Set()];
    for (const set of sets) for (const listener of set) listener.missed();
  }

  clear(): void {
    this.listeners.clear();
  }
}

/** The embedded store's feed: the store announces every change here, in the same step as the write. */
export class InProcessChangeFeed implements SessionChangeFeed {
  private readonly fanout = new LocalChangeFanout();

  constructor(private readonly channelOf: (tenantId: string, userId: string) => string) {}

  async listen(tenantId: string, userId: string, listener: SessionChangeListener): Promise<() => void> {
    const channel = this.channelOf(tenantId, userId);
    this.fanout.add(channel, listener);
    return () => void this.fanout.remove(channel, listener);
  }

  /** Called by the embedded store after each write or deletion it made. */
  announce(tenantId: string, change: SessionChange): void {
    this.fanout.publish(this.channelOf(tenantId, change.ref.userId), change);
  }

  async close(): Promise<void> {
    this.fanout.clear();
  }
}
