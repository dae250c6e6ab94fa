import { ConflictError, ContextTooLargeError } from "../../errors/errors";
import type {
  ContextFields,
  SessionRecord,
  SessionRef,
  SessionWrite,
  WriteLimits,
} from "../../sessions/session-record";
import type { PageCursor, SessionIndexPage, SessionStore } from "../../sessions/session-store";
import { indexMember, sessionKey } from "../keys";
import {
  contextBytes,
  decodeDocument,
  encodeDocument,
  newest,
  toRecord,
  type SessionDocument,
} from "../session-document";
import { newestFirst, pageAfter } from "../session-page";
import { MemoryTenantState } from "./memory-tenant-settings-store";

/** Options of the embedded store. */
export interface MemorySessionStoreOptions {
  /** Clock in epoch milliseconds. Default `Date.now`; tests pass their own to move time. */
  now?: () => number;
  /** How often expired sessions are swept out of memory. Default 60 000 ms; reads never see them regardless. */
  sweepIntervalMs?: number;
  /** Tenant settings and cleanup schedule shared with the rest of the embedded backend. Default: its own. */
  tenants?: MemoryTenantState;
}

interface Entry {
  readonly tenantId: string;
  readonly ref: SessionRef;
  readonly member: string;
  readonly document: string;
  readonly lastUpdated: number;
  readonly expiresAt: number;
}

/**
 * The embedded in-process store used when no Redis is configured: the same keys, document layout, TTLs, merge
 * rules, limits, listing order and cleanup rules as the Redis store, for one process and without durability.
 * Each operation runs to completion synchronously, which makes every write atomic. Documents are kept as JSON
 * text, exactly as Redis keeps them, so nothing a caller holds is ever shared with the store. Tenant-wide
 * operations (listing, purge) walk all entries: fine for local use, which is what this store is for.
 */
export class MemorySessionStore implements SessionStore {
  readonly kind = "memory";
  readonly tenants: MemoryTenantState;
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.tenants = options.tenants ?? new MemoryTenantState(this.now);
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  async getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    return refs.map((ref) => {
      const entry = this.live(sessionKey(tenantId, ref.userId, ref.sessionId));
      return entry === undefined ? null : toRecord(tenantId, ref, decodeDocument(entry.document));
    });
  }

  async store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    const caps = this.caps(tenantId, limits);
    return this.write(tenantId, ref, write, limits, () => ({
      conversationState: write.conversationState ?? {},
      interruptedQueries: newest(write.interruptedQueries ?? [], caps.maxInterruptedQueries),
      recentInteractions: newest(write.recentInteractions ?? [], caps.maxRecentInteractions),
      userPreferences: write.userPreferences ?? {},
    }));
  }

  async merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    const caps = this.caps(tenantId, limits);
    return this.write(tenantId, ref, write, limits, (old) => ({
      // Spread defines own properties, so a key such as "__proto__" stays an ordinary key.
      conversationState: write.conversationState
        ? { ...old?.conversationState, ...write.conversationState }
        : (old?.conversationState ?? {}),
      interruptedQueries: write.interruptedQueries
        ? newest([...(old?.interruptedQueries ?? []), ...write.interruptedQueries], caps.maxInterruptedQueries)
        : (old?.interruptedQueries ?? []),
      recentInteractions: write.recentInteractions
        ? newest([...(old?.recentInteractions ?? []), ...write.recentInteractions], caps.maxRecentInteractions)
        : (old?.recentInteractions ?? []),
      userPreferences: write.userPreferences
        ? { ...old?.userPreferences, ...write.userPreferences }
        : (old?.userPreferences ?? {}),
    }));
  }

  async deleteSession(tenantId: string, ref: SessionRef): Promise<boolean> {
    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const existed = this.live(key) !== undefined;
    this.entries.delete(key);
    return existed;
  }

  async deleteUserSessions(tenantId: string, userId: string): Promise<number> {
    let deleted = 0;
    for (const [key, entry] of this.entries) {
      if (entry.tenantId !== tenantId || entry.ref.userId !== userId) continue;
      if (this.live(key) !== undefined) deleted++;
      this.entries.delete(key);
    }
    return deleted;
  }

  async listUserSessions(
    tenantId: string,
    userId: string,
    first: number,
    after?: PageCursor,
  ): Promise<SessionIndexPage> {
    const sessions: (PageCursor & { record: SessionRecord })[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.tenantId === tenantId && entry.ref.userId === userId && this.live(key) !== undefined) {
        const record = toRecord(tenantId, entry.ref, decodeDocument(entry.document));
        sessions.push({ lastUpdated: entry.lastUpdated, member: entry.member, record });
      }
    }
    return pageAfter(sessions.sort(newestFirst), after, first, sessions.length);
  }

  async purgeOrphans(tenantId: string, olderThanSeconds: number): Promise<number> {
    const cutoff = this.now() - olderThanSeconds * 1000;
    let purged = 0;
    for (const [key, entry] of this.entries) {
      if (entry.tenantId !== tenantId) continue;
      if (this.live(key) === undefined) continue; // expired: live() already dropped it, not counted
      if (entry.lastUpdated < cutoff) {
        this.entries.delete(key);
        purged++;
      }
    }
    return purged;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  /** The tenant's own list caps, else the given defaults. */
  private caps(
    tenantId: string,
    limits: WriteLimits,
  ): Pick<WriteLimits, "maxInterruptedQueries" | "maxRecentInteractions"> {
    const own = this.tenants.ownValues(tenantId);
    return {
      maxInterruptedQueries: own.maxInterruptedQueries ?? limits.maxInterruptedQueries,
      maxRecentInteractions: own.maxRecentInteractions ?? limits.maxRecentInteractions,
    };
  }

  private async write(
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
    nextFields: (old: SessionDocument | undefined) => ContextFields,
  ): Promise<SessionRecord> {
    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const current = this.live(key);
    const old = current === undefined ? undefined : decodeDocument(current.document);
    const version = old?.version ?? 0;
    if (write.expectedVersion !== undefined && write.expectedVersion !== version) {
      throw new ConflictError(write.expectedVersion, version);
    }
    const fields = nextFields(old);
    const bytes = contextBytes(fields);
    if (bytes > limits.maxContextBytes) throw new ContextTooLargeError(bytes, limits.maxContextBytes);

    const now = this.now();
    const own = this.tenants.ownValues(tenantId);
    const ttlSeconds = write.ttlSeconds ?? old?.ttlSeconds ?? own.defaultTtlSeconds ?? limits.defaultTtlSeconds;
    const document = encodeDocument({
      version: version + 1,
      storedAt: old?.storedAt ?? now,
      lastUpdated: now,
      ttlSeconds,
      ...fields,
    });
    this.entries.set(key, {
      tenantId,
      ref: { userId: ref.userId, sessionId: ref.sessionId },
      member: indexMember(ref.userId, ref.sessionId),
      document,
      lastUpdated: now,
      expiresAt: now + ttlSeconds * 1000,
    });
    // The embedded schedule applies this when called, so the write and its scheduling are still one step.
    await this.tenants.scheduleFirstRun(tenantId, now + this.tenants.values(tenantId).cleanupIntervalSeconds * 1000);
    return toRecord(tenantId, ref, decodeDocument(document));
  }

  /** The entry under `key` unless it has expired (an expired one is removed, as Redis does on access). */
  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}
