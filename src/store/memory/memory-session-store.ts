import { ConflictError, ContextTooLargeError } from "../../errors/errors";
import type {
  ContextFields,
  SessionRecord,
  SessionRef,
  SessionWrite,
  WriteLimits,
} from "../../sessions/session-record";
import type { SessionStore } from "../../sessions/session-store";
import { sessionKey } from "../keys";
import {
  contextBytes,
  decodeDocument,
  encodeDocument,
  newest,
  toRecord,
  type SessionDocument,
} from "../session-document";

/** Options of the embedded store. */
export interface MemorySessionStoreOptions {
  /** Clock in epoch milliseconds. Default `Date.now`; tests pass their own to move time. */
  now?: () => number;
  /** How often expired sessions are swept out of memory. Default 60 000 ms; reads never see them regardless. */
  sweepIntervalMs?: number;
}

interface Entry {
  readonly document: string;
  readonly expiresAt: number;
}

/**
 * The embedded in-process store used when no Redis is configured: the same keys, document layout, TTLs, merge
 * rules and limits as the Redis store, for one process and without durability. Each operation runs to completion
 * synchronously, which makes every write atomic. Documents are kept as JSON text, exactly as Redis keeps them,
 * so nothing a caller holds is ever shared with the store.
 */
export class MemorySessionStore implements SessionStore {
  readonly kind = "memory";
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  async getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    return refs.map((ref) => {
      const document = this.live(sessionKey(tenantId, ref.userId, ref.sessionId));
      return document === undefined ? null : toRecord(tenantId, ref, decodeDocument(document));
    });
  }

  async store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write(tenantId, ref, write, limits, () => ({
      conversationState: write.conversationState ?? {},
      interruptedQueries: newest(write.interruptedQueries ?? [], limits.maxInterruptedQueries),
      recentInteractions: newest(write.recentInteractions ?? [], limits.maxRecentInteractions),
      userPreferences: write.userPreferences ?? {},
    }));
  }

  async merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write(tenantId, ref, write, limits, (old) => ({
      // Spread defines own properties, so a key such as "__proto__" stays an ordinary key.
      conversationState: write.conversationState
        ? { ...old?.conversationState, ...write.conversationState }
        : (old?.conversationState ?? {}),
      interruptedQueries: write.interruptedQueries
        ? newest([...(old?.interruptedQueries ?? []), ...write.interruptedQueries], limits.maxInterruptedQueries)
        : (old?.interruptedQueries ?? []),
      recentInteractions: write.recentInteractions
        ? newest([...(old?.recentInteractions ?? []), ...write.recentInteractions], limits.maxRecentInteractions)
        : (old?.recentInteractions ?? []),
      userPreferences: write.userPreferences
        ? { ...old?.userPreferences, ...write.userPreferences }
        : (old?.userPreferences ?? {}),
    }));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  private write(
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
    nextFields: (old: SessionDocument | undefined) => ContextFields,
  ): SessionRecord {
    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const current = this.live(key);
    const old = current === undefined ? undefined : decodeDocument(current);
    const version = old?.version ?? 0;
    if (write.expectedVersion !== undefined && write.expectedVersion !== version) {
      throw new ConflictError(write.expectedVersion, version);
    }
    const fields = nextFields(old);
    const bytes = contextBytes(fields);
    if (bytes > limits.maxContextBytes) throw new ContextTooLargeError(bytes, limits.maxContextBytes);

    const now = this.now();
    const ttlSeconds = write.ttlSeconds ?? old?.ttlSeconds ?? limits.defaultTtlSeconds;
    const document = encodeDocument({
      version: version + 1,
      storedAt: old?.storedAt ?? now,
      lastUpdated: now,
      ttlSeconds,
      ...fields,
    });
    this.entries.set(key, { document, expiresAt: now + ttlSeconds * 1000 });
    return toRecord(tenantId, ref, decodeDocument(document));
  }

  /** The document under `key` unless it has expired (an expired one is removed, as Redis does on access). */
  private live(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.document;
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}
