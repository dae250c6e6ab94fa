import type { CleanupSchedule } from "../../cleanup/cleanup-schedule";
import { ConflictError, ContextTooLargeError, TooManyKeysError } from "../../errors/errors";
import { MAX_OBJECT_KEYS } from "../../sessions/json-limits";
import {
  SYSTEM_ACTOR,
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
import { decodeHistoryEntry, historyPage, keptFields } from "../../history/history-entry";
import {
  activityIndexKey,
  changeChannel,
  expiryIndexKey,
  historyKey,
  indexMember,
  refFromMember,
  sessionKey,
  settingsKey,
  userExpiryKey,
  userIndexKey,
} from "../keys";
import { pageAfter } from "../session-page";
import { CONTEXT_JSON_OVERHEAD, decodeDocument, indexedList, indexedObject } from "../session-document";
import { readDocument, readWrittenHeader } from "../stored-session-record";
import { ping, type RedisClient } from "./redis-client";
import { readKeys, retryWhileMigrating } from "./redis-migrating";
import { toStoreError } from "./redis-errors";
import { actorMembers } from "../../history/history-entry";
import { defineScripts, FirstCleanup, WriteSessionStatus } from "./redis-scripts";
import { redisNow } from "./redis-time";

/** Sessions one purge or erasure step handles: small enough that no single script runs for long. */
const BATCH = 200;

/** Expired index entries one listing drops before counting. */
const EXPIRED_ENTRIES_PER_LISTING = 1000;

/** What a RedisSessionStore works with besides its client. */
export interface RedisSessionStoreOptions {
  /**
   * What a tenant has until it sets its own: TTL, list caps, cleanup interval (normally DEFAULT_TENANT_SETTINGS). The
   * write script reads the tenant's own settings and falls back on these.
   */
  readonly defaults: Readonly<TenantSettingsValues>;
  /** Where a tenant's first cleanup is put after its first write. */
  readonly schedule: CleanupSchedule;
  /**
   * Serves `getMany` (createReadConnection: a second, auto-pipelined connection); everything else, writes and
   * scripts, goes through the store's client. Default: that client (tests, tools).
   */
  readonly reads?: RedisClient;
}

/**
 * Session contexts in Redis: a JSON document per session under `keys.sessionKey`, the TTL on the key.
 * Reads are one MGET; each write is one EVALSHA of write-session-7.lua, so a merge — with its change log entry — is atomic without any retry.
 * The client is injected: this class never opens or configures a connection of its own. It may be one Redis or a
 * Cluster: every multi-key command and script here names keys of one tenant only, which share the tenant's slot.
 * While that slot migrates between two Cluster masters, a batch of reads is split per key and a script whose keys
 * are on both sides (TRYAGAIN) is tried again for a short while (redis-migrating.ts).
 */
export class RedisSessionStore implements SessionStore {
  readonly kind = "redis";
  private readonly reads: RedisClient;
  private readonly schedule: CleanupSchedule;
  private readonly defaults: Readonly<TenantSettingsValues>;

  constructor(
    private readonly redis: RedisClient,
    options: RedisSessionStoreOptions,
  ) {
    this.reads = options.reads ?? redis;
    this.schedule = options.schedule;
    this.defaults = options.defaults;
    defineScripts(redis);
  }

  async getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    if (refs.length === 0) return [];
    const keys = refs.map((ref) => sessionKey(tenantId, ref.userId, ref.sessionId));
    const values = await readKeys(this.reads, keys).catch(toStoreError("read"));
    return values.map((value, i) => (value === null ? null : readDocument(tenantId, refs[i], value, keys[i])));
  }

  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("store", tenantId, ref, write, limits);
  }

  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("merge", tenantId, ref, write, limits);
  }

  async deleteSession(tenantId: string, ref: SessionRef): Promise<boolean> {
    const [deleted] = await this.deleteBatch(tenantId, "any", 0, [indexMember(ref.userId, ref.sessionId)]);
    return deleted === 1;
  }

  async deleteUserSessions(tenantId: string, userId: string): Promise<number> {
    const index = userIndexKey(tenantId, userId);
    let deleted = 0;
    for (;;) {
      const members = await this.redis.zrange(index, 0, BATCH - 1).catch(toStoreError("write"));
      if (members.length === 0) return deleted;
      deleted += (await this.deleteBatch(tenantId, "any", 0, members))[0];
    }
  }

  async listUserSessions(
    tenantId: string,
    userId: string,
    first: number,
    after?: PageCursor,
  ): Promise<SessionIndexPage> {
    // Two round trips: the index entries (the script touches only the keys it declares), then the page's sessions.
    const reply = await retryWhileMigrating(() =>
      this.redis.userSessionsPage(
        userIndexKey(tenantId, userId),
        userExpiryKey(tenantId, userId),
        activityIndexKey(tenantId),
        expiryIndexKey(tenantId),
        String(first + 1),
        after ? String(after.lastUpdated) : "",
        String(EXPIRED_ENTRIES_PER_LISTING),
      ),
    ).catch(toStoreError("read"));
    const totalCount = Number(reply[0]); // reply[1] (ties) only sized the read
    const entries: PageCursor[] = [];
    for (let i = 2; i < reply.length; i += 2)
      entries.push({ member: String(reply[i]), lastUpdated: Number(reply[i + 1]) });
    const page = pageAfter(
      entries.map((entry) => ({ ...entry, record: null })),
      after,
      first,
      totalCount,
    );
    if (page.entries.length === 0) return page;
    const keys = page.entries.map(({ ref }) => sessionKey(tenantId, ref.userId, ref.sessionId));
    const documents = await readKeys(this.reads, keys).catch(toStoreError("read"));
    return {
      ...page,
      entries: page.entries.map((entry, i) => {
        const document = documents[i];
        // null: the session expired or was deleted between the two steps; the page leaves it out.
        return { ...entry, record: document === null ? null : readDocument(tenantId, entry.ref, document, keys[i]) };
      }),
    };
  }

  async purgeOrphans(tenantId: string, olderThanSeconds: number): Promise<number> {
    // The clock the write script stamped lastUpdated with: on a Cluster, the node that owns the tenant's slot.
    const now = await redisNow(this.redis, settingsKey(tenantId));
    const cutoff = now - olderThanSeconds * 1000;
    let purged = 0;
    // Orphans: no write before the cut-off. Each batch reads only index entries that qualify.
    purged += await this.deleteWhile(tenantId, "idle", cutoff, () =>
      this.redis.zrangebyscore(activityIndexKey(tenantId), "-inf", `(${cutoff}`, "LIMIT", 0, BATCH),
    );
    // Entries of sessions that expired by TTL while still recent: their keys are gone, only the entries remain.
    purged += await this.deleteWhile(tenantId, "expired", now, () =>
      this.redis.zrangebyscore(expiryIndexKey(tenantId), "-inf", now, "LIMIT", 0, BATCH),
    );
    return purged;
  }

  private async deleteWhile(
    tenantId: string,
    mode: "idle" | "expired",
    cutoff: number,
    candidates: () => Promise<string[]>,
  ): Promise<number> {
    let deleted = 0;
    for (;;) {
      const members = await candidates().catch(toStoreError("write"));
      if (members.length === 0) return deleted;
      const [removed, dropped] = await this.deleteBatch(tenantId, mode, cutoff, members);
      deleted += removed;
      // Every candidate was written again meanwhile: the next read would return the same, so stop.
      if (removed + dropped === 0) return deleted;
    }
  }

  private deleteBatch(
    tenantId: string,
    mode: "idle" | "expired" | "any",
    cutoff: number,
    members: readonly string[],
  ): Promise<[number, number]> {
    const keys = [activityIndexKey(tenantId), expiryIndexKey(tenantId)];
    const channels: string[] = [];
    for (const member of members) {
      const ref = refFromMember(member);
      keys.push(
        sessionKey(tenantId, ref.userId, ref.sessionId),
        userIndexKey(tenantId, ref.userId),
        userExpiryKey(tenantId, ref.userId),
        historyKey(tenantId, ref.userId, ref.sessionId),
      );
      channels.push(changeChannel(tenantId, ref.userId));
    }
    return retryWhileMigrating(() =>
      this.redis.deleteSessions(keys.length, ...keys, mode, String(cutoff), ...members, ...channels),
    ).catch(toStoreError("write"));
  }

  /**
   * Puts a tenant on the cleanup schedule after its first write. The schedule is a cross-tenant key (another
   * Cluster slot), so this is a second step; if it fails, the tenant is not marked scheduled and its next write
   * tries again.
   */
  private async scheduleFirstCleanup(tenantId: string, at: number): Promise<void> {
    try {
      await this.schedule.scheduleFirstRun(tenantId, at);
    } catch {
      // The session write itself succeeded; only the schedule entry is retried by the next write.
    }
  }

  async ping(): Promise<void> {
    await Promise.all([ping(this.redis), this.reads === this.redis ? undefined : ping(this.reads)]).catch(
      toStoreError("read"),
    );
  }

  async close(): Promise<void> {
    const clients = this.reads === this.redis ? [this.redis] : [this.redis, this.reads];
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  }

  async history(tenantId: string, ref: SessionRef, first: number, before?: number): Promise<SessionHistoryPage> {
    const reply = await retryWhileMigrating(() =>
      this.redis.sessionHistory(
        sessionKey(tenantId, ref.userId, ref.sessionId),
        historyKey(tenantId, ref.userId, ref.sessionId),
        String(before ?? 0),
        String(first),
      ),
    ).catch(toStoreError("read"));
    if (reply.length === 0) return { versions: [], hasNextPage: false };
    return historyPage(decodeDocument(reply[0]), reply.slice(1).map(decodeHistoryEntry), first, before);
  }

  async restore(
    tenantId: string,
    ref: SessionRef,
    restore: SessionRestore,
    limits: WriteLimits,
  ): Promise<SessionRecord> {
    // A kept version never changes, so reading it and writing it back need not be one atomic step: a write in
    // between only means the restore lands on top of it (and `expectedVersion` refuses that when asked to).
    const { versions } = await this.history(tenantId, ref, 1, restore.version + 1);
    const fields = keptFields(versions, restore.version);
    return this.write(
      "restore",
      tenantId,
      ref,
      { ...fields, actor: restore.actor, expectedVersion: restore.expectedVersion },
      limits,
      JSON.stringify({ restoredVersion: restore.version }),
    );
  }

  private async write(
    mode: "store" | "merge" | "restore",
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
    restoreChange = "",
  ): Promise<SessionRecord> {
    // A store writes every field: the omitted ones are empty. A merge leaves omitted ones as they are ("").
    const fallback = mode === "merge" ? undefined : { object: {}, list: [] };
    const interrupted = write.interruptedQueries ?? fallback?.list;
    const recent = write.recentInteractions ?? fallback?.list;
    const state = indexedObject(write.conversationState ?? fallback?.object);
    const preferences = indexedObject(write.userPreferences ?? fallback?.object);
    const interruptedList = indexedList(interrupted);
    const recentList = indexedList(recent);

    // As bytes: the new document goes into the record (and a selected context into the answer) without being decoded.
    const reply = await retryWhileMigrating(() =>
      this.redis.writeSessionBuffer(
        sessionKey(tenantId, ref.userId, ref.sessionId),
        settingsKey(tenantId),
        activityIndexKey(tenantId),
        expiryIndexKey(tenantId),
        userIndexKey(tenantId, ref.userId),
        userExpiryKey(tenantId, ref.userId),
        historyKey(tenantId, ref.userId, ref.sessionId),
        mode,
        state.text,
        interruptedList.text,
        String(interrupted?.length ?? 0),
        recentList.text,
        String(recent?.length ?? 0),
        preferences.text,
        String(write.ttlSeconds ?? 0),
        String(this.defaults.defaultTtlSeconds),
        String(write.expectedVersion ?? -1),
        String(limits.maxContextBytes - CONTEXT_JSON_OVERHEAD),
        String(this.defaults.maxInterruptedQueries),
        String(this.defaults.maxRecentInteractions),
        indexMember(ref.userId, ref.sessionId),
        String(this.defaults.cleanupIntervalSeconds),
        actorMembers(write.actor ?? SYSTEM_ACTOR),
        String(this.defaults.historyDepth),
        restoreChange,
        changeChannel(tenantId, ref.userId),
        state.index,
        preferences.index,
        String(MAX_OBJECT_KEYS),
        write.returnContext === false ? "header" : "document",
        interruptedList.index,
        recentList.index,
      ),
    ).catch(toStoreError("write"));
    const [status, bytes, firstCleanup, interval] = reply;
    const value = () => String(bytes); // the document when written; else short (a version, a count, a field name)

    switch (String(status) as WriteSessionStatus) {
      case WriteSessionStatus.Written: {
        // The script answers the document in parts (it never makes it one string: see write-session-7.lua).
        const document = Array.isArray(bytes) ? Buffer.concat(bytes) : bytes;
        const record =
          write.returnContext === false
            ? readWrittenHeader(tenantId, ref, document)
            : readDocument(tenantId, ref, document);
        if (String(firstCleanup) === FirstCleanup.Needed)
          await this.scheduleFirstCleanup(tenantId, record.lastUpdated.getTime() + Number(String(interval)) * 1000);
        return record;
      }
      case WriteSessionStatus.Conflict:
        throw new ConflictError(write.expectedVersion ?? -1, Number(value()));
      case WriteSessionStatus.TooLarge:
        throw new ContextTooLargeError(Number(value()) + CONTEXT_JSON_OVERHEAD, limits.maxContextBytes);
      case WriteSessionStatus.TooManyKeys:
        throw new TooManyKeysError(
          value() as "conversationState" | "userPreferences",
          Number(String(firstCleanup)),
          MAX_OBJECT_KEYS,
        );
      default:
        throw new Error(`write-session script answered ${String(status)}`);
    }
  }
}
