import { ConflictError, ContextTooLargeError, TooManyKeysError } from "../../errors/errors";
import { MAX_OBJECT_KEYS } from "../../sessions/json-limits";
import {
  contextChange,
  decodeHistoryEntry,
  define,
  historyPage,
  keptFields,
  type HistoryEntry,
  type SessionOperationName,
} from "../../history/history-entry";
import {
  SYSTEM_ACTOR,
  type ContextFields,
  type JsonObject,
  type JsonValue,
  type SessionRecord,
  type SessionRef,
  type SessionWrite,
  type WriteLimits,
} from "../../sessions/session-record";
import type {
  PageCursor,
  SessionHistoryPage,
  SessionIndexPage,
  SessionRestore,
  SessionStore,
} from "../../sessions/session-store";
import type { TenantSettingsValues } from "../../tenants/tenant-settings";
import { InProcessChangeFeed } from "../../live/session-change-feed";
import { changeChannel, indexMember, sessionKey } from "../keys";
import { contextBytes, decodeDocument, encodeDocument, newest, type SessionDocument } from "../session-document";
import { readDocument } from "../stored-session-record";
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
  /** The change log, newest first, as JSON text (history-entry.ts): it lives and dies with the entry. */
  readonly history: readonly string[];
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
  /** Every write and deletion, announced in the same step (live updates, in this process). */
  readonly changes = new InProcessChangeFeed(changeChannel);
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
      return entry === undefined ? null : readDocument(tenantId, ref, entry.document);
    });
  }

  async store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("STORE", tenantId, ref, write, limits, (_old, tenant) => ({
      conversationState: write.conversationState ?? {},
      interruptedQueries: newest(write.interruptedQueries ?? [], tenant.maxInterruptedQueries),
      recentInteractions: newest(write.recentInteractions ?? [], tenant.maxRecentInteractions),
      userPreferences: write.userPreferences ?? {},
    }));
  }

  async merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("MERGE", tenantId, ref, write, limits, (old, tenant) => ({
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

  async history(tenantId: string, ref: SessionRef, first: number, before?: number): Promise<SessionHistoryPage> {
    const entry = this.live(sessionKey(tenantId, ref.userId, ref.sessionId));
    if (entry === undefined) return { versions: [], hasNextPage: false };
    return historyPage(decodeDocument(entry.document), entry.history.map(decodeHistoryEntry), first, before);
  }

  async restore(
    tenantId: string,
    ref: SessionRef,
    restore: SessionRestore,
    limits: WriteLimits,
  ): Promise<SessionRecord> {
    const { versions } = await this.history(tenantId, ref, 1, restore.version + 1);
    const fields = keptFields(versions, restore.version);
    const write = { ...fields, actor: restore.actor, expectedVersion: restore.expectedVersion };
    return this.write(
      "RESTORE",
      tenantId,
      ref,
      write,
      limits,
      (_old, tenant) => ({
        conversationState: fields.conversationState,
        interruptedQueries: newest(fields.interruptedQueries, tenant.maxInterruptedQueries),
        recentInteractions: newest(fields.recentInteractions, tenant.maxRecentInteractions),
        userPreferences: fields.userPreferences,
      }),
      { restoredVersion: restore.version },
    );
  }

  async deleteSession(tenantId: string, ref: SessionRef): Promise<boolean> {
    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const entry = this.live(key);
    if (entry === undefined) return false;
    this.remove(key, entry);
    return true;
  }

  async deleteUserSessions(tenantId: string, userId: string): Promise<number> {
    let deleted = 0;
    for (const [key, entry] of this.entries) {
      if (entry.tenantId !== tenantId || entry.ref.userId !== userId) continue;
      if (this.live(key) === undefined) continue;
      this.remove(key, entry);
      deleted++;
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
        const record = readDocument(tenantId, entry.ref, entry.document);
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
        this.remove(key, entry);
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

  /** Deletes a live session and announces it, as delete-sessions.lua does. */
  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    const version = Number(/^\{"version":(\d+),/.exec(entry.document)?.[1] ?? 0);
    this.changes.announce(entry.tenantId, { type: "DELETED", ref: entry.ref, version, at: this.now() });
  }

  /** What applies to a tenant's writes: its own settings, else this store's defaults (as the write script reads them). */
  private settingsOf(tenantId: string): TenantSettingsValues {
    return { ...this.defaults, ...this.tenants.ownValues(tenantId) };
  }

  private async write(
    operation: SessionOperationName,
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
    nextFields: (old: SessionDocument | undefined, tenant: TenantSettingsValues) => ContextFields,
    restoreChange: JsonObject = {},
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
    if (operation === "MERGE") {
      for (const field of ["conversationState", "userPreferences"] as const) {
        const keys = Object.keys(fields[field]).length;
        if (keys > MAX_OBJECT_KEYS) throw new TooManyKeysError(field, keys, MAX_OBJECT_KEYS);
      }
    }
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
    // As in Redis: the newest historyDepth versions, one after the other; a new session starts a new log.
    const logged: HistoryEntry = {
      version: version + 1,
      at: now,
      operation,
      actor: (write.actor ?? SYSTEM_ACTOR).userId,
      roles: [...(write.actor ?? SYSTEM_ACTOR).roles],
      ttlSeconds,
      ...changeAndUndo(operation, write, old, tenant, restoreChange),
    };
    const history = tenant.historyDepth === 0 ? [] : [JSON.stringify(logged), ...(current?.history ?? [])];
    this.entries.set(key, {
      tenantId,
      ref: { userId: ref.userId, sessionId: ref.sessionId },
      member: indexMember(ref.userId, ref.sessionId),
      document,
      lastUpdated: now,
      expiresAt: now + ttlSeconds * 1000,
      history: history.slice(0, tenant.historyDepth),
    });
    // The embedded schedule applies this when called, so the write and its scheduling are still one step.
    await this.tenants.scheduleFirstRun(tenantId, now + tenant.cleanupIntervalSeconds * 1000);
    const record = readDocument(tenantId, ref, document);
    this.changes.announce(tenantId, {
      type: "UPDATED",
      ref: { userId: ref.userId, sessionId: ref.sessionId },
      version: record.version,
      at: now,
      operation,
      change: logged.change ?? contextChange(fields),
      record,
      storedAt: record.storedAt.getTime(),
    });
    return record;
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

/**
 * What a write was given and what it replaced, as the Redis write script records them (history-entry.ts): the
 * embedded store keeps the same log.
 */
function changeAndUndo(
  operation: SessionOperationName,
  write: SessionWrite,
  old: SessionDocument | undefined,
  tenant: TenantSettingsValues,
  restoreChange: JsonObject,
): Pick<HistoryEntry, "change" | "undo"> {
  if (operation !== "MERGE") {
    const undo = old
      ? {
          replaced: {
            conversationState: old.conversationState,
            interruptedQueries: old.interruptedQueries,
            recentInteractions: old.recentInteractions,
            userPreferences: old.userPreferences,
          },
        }
      : ({ created: true } as const);
    if (operation === "RESTORE") return { change: restoreChange, undo };
    // A store's change is the context it left unless the caps dropped entries it was given (history-entry.ts).
    const capped =
      (write.interruptedQueries?.length ?? 0) > tenant.maxInterruptedQueries ||
      (write.recentInteractions?.length ?? 0) > tenant.maxRecentInteractions;
    return capped ? { change: storeChange(write), undo } : { undo };
  }
  const change: JsonObject = {};
  const undo: Record<string, unknown> = {};
  const addedKeys: Record<string, string[]> = {};
  for (const field of ["conversationState", "userPreferences"] as const) {
    const patch = write[field];
    if (patch === undefined) continue;
    change[field] = patch;
    const before = old?.[field] ?? {};
    // The replaced keys in their stored order, as the write script copies them from the stored object.
    const replaced: JsonObject = {};
    for (const key of Object.keys(before)) if (Object.hasOwn(patch, key)) define(replaced, key, before[key]);
    undo[field] = replaced;
    const fresh = Object.keys(patch).filter((key) => !Object.hasOwn(before, key));
    if (fresh.length > 0) addedKeys[field] = fresh;
  }
  const caps = { interruptedQueries: tenant.maxInterruptedQueries, recentInteractions: tenant.maxRecentInteractions };
  for (const field of ["interruptedQueries", "recentInteractions"] as const) {
    const added = write[field];
    if (added === undefined) continue;
    change[field] = added as JsonValue[];
    const before: JsonValue[] = old?.[field] ?? [];
    const pushedOut = Math.max(0, before.length + added.length - caps[field]);
    undo[field] = [before.length, before.slice(0, Math.min(pushedOut, before.length))];
  }
  if (Object.keys(addedKeys).length > 0) undo.added = addedKeys;
  return { change, undo: undo as HistoryEntry["undo"] };
}

function storeChange(write: SessionWrite): JsonObject {
  return {
    conversationState: write.conversationState ?? {},
    interruptedQueries: write.interruptedQueries ?? [],
    recentInteractions: write.recentInteractions ?? [],
    userPreferences: write.userPreferences ?? {},
  };
}
