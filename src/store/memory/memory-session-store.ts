import { ConflictError, ContextTooLargeError } from "../../errors/errors";
import type {
  ContextFields,
  SessionRecord,
  SessionRef,
  SessionWrite,
  WriteLimits,
} from "../../sessions/session-record";
import type { PageCursor, SessionIndexPage, SessionStore } from "../../sessions/session-store";
import type { TenantSettingsValues } from "../../tenants/tenant-settings";
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
  /** What a tenant has until it sets its own: TTL, list caps, cleanup interval (normally DEFAULT_TENANT_SETTINGS). */
  defaults: Readonly<TenantSettingsValues>;
  /** Clock in epoch milliseconds. Default `Date.now`; tests pass their own to move time. */
  now?: () => number;
  /** How often expired sessions are swept out of memory. Default 60 000 ms; reads never see them regardless. */
  sweepIntervalMs?: number;
  /**
   * Tenant settings and cleanup schedule shared with the rest of the embedded backend; a tenant's first write puts it
   * on this schedule. Default: its own, with the same defaults.
   */
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
  private readonly defaults: Readonly<TenantSettingsValues>;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemorySessionStoreOptions) {
    this.now = options.now ?? Date.now;
    this.defaults = options.defaults;
    this.tenants = options.tenants ?? new MemoryTenantState(options.defaults, this.now);
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
    return this.write(tenantId, ref, write, limits, (_old, tenant) => ({
      conversationState: write.conversationState ?? {},
      interruptedQueries: newest(write.interruptedQueries ?? [], tenant.maxInterruptedQueries),
      recentInteractions: newest(write.recentInteractions ?? [], tenant.maxRecentInteractions),
      userPreferences: write.userPreferences ?? {},
    }));
  }

  async merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write(tenantId, ref, write, limits, (old, tenant) => ({
      // Spread defines own properties, so a key such as "__proto__" stays an ordinary key.
      conversationState: write.conversationState
        ? { ...old?.conversationState, ...write.conversationState }
        : (old?.conversationState ?? {}),
      interruptedQueries: write.interruptedQueries
        ? newest([...(old?.interruptedQueries ?? []), ...write.interruptedQueries], tenant.maxInterruptedQueries)
        : (old?.interruptedQueries ?? []),
      recentInteractions: write.recentInteractions
        ? newest([...(old?.recentInteractions ?? []), ...write.recentInteractions], tenant.maxRecentInteractions)
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

  /** What applies to a tenant's writes: its own settings, else this store's defaults (as the write script reads them). */
  private settingsOf(tenantId: string): TenantSettingsValues {
    return { ...this.defaults, ...this.tenants.ownValues(tenantId) };
  }

  private async write(
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
    nextFields: (old: SessionDocument | undefined, tenant: TenantSettingsValues) => ContextFields,
  ): Promise<SessionRecord> {
    const tenant = this.settingsOf(tenantId);
    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const current = this.live(key);
    const old = current === undefined ? undefined : decodeDocument(current.document);
    const version = old?.version ?? 0;
    if (write.expectedVersion !== undefined && write.expectedVersion !== version) {
      throw new ConflictError(write.expectedVersion, version);
    }
    const fields = nextFields(old, tenant);
    const bytes = contextBytes(fields);
    if (bytes > limits.maxContextBytes) throw new ContextTooLargeError(bytes, limits.maxContextBytes);

    const now = this.now();
    const ttlSeconds = write.ttlSeconds ?? old?.ttlSeconds ?? tenant.defaultTtlSeconds;
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
    await this.tenants.scheduleFirstRun(tenantId, now + tenant.cleanupIntervalSeconds * 1000);
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
