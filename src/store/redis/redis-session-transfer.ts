import type { CleanupSchedule } from "../../cleanup/cleanup-schedule";
import type { SessionRef } from "../../sessions/session-record";
import type { TenantSettingsValues } from "../../tenants/tenant-settings";
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
import type { RedisClient } from "./redis-client";
import { defineScripts, FirstCleanup, type ImportStatus } from "./redis-scripts";
import { redisNow } from "./redis-time";

/** A session as an export reads it: the stored document as it is, its expiry and its change log. */
export interface StoredSession {
  readonly ref: SessionRef;
  readonly document: string;
  /** When the key expires, on the clock of the node that holds it (epoch ms). */
  readonly expiresAt: number;
  readonly remainingTtlMs: number;
  /** Newest first. */
  readonly history: readonly string[];
}

/** A session to write as it is (see import-session-7.lua). */
export interface SessionToWrite {
  readonly tenantId: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly version: number;
  readonly lastUpdated: number;
  /** Epoch ms; 0: `remainingTtlMs` from the moment of the write. */
  readonly expiresAt: number;
  readonly remainingTtlMs: number;
  readonly document: string;
  /** The four fields as a store's change: what the live-update announcement carries. */
  readonly change: string;
  /** Newest first. */
  readonly history: readonly string[];
}

/** What an import does with a session that is there already. */
export type ImportMode = "skip" | "overwrite" | "newer";

/**
 * Reads and writes whole sessions for the data tool (export, import, legacy migration). Like the stores it takes its
 * client in the constructor, names only keys of one tenant per command (one Cluster slot), and never uses KEYS or
 * SCAN over the keyspace: an export walks the tenant's own index with ZSCAN.
 */
export class RedisSessionTransfer {
  private readonly defaults: Readonly<TenantSettingsValues>;
  private readonly schedule: CleanupSchedule;
  /** Tenants this process put on the cleanup schedule, so that their other sessions in flight need not ask again. */
  private readonly scheduled = new Set<string>();

  constructor(
    private readonly redis: RedisClient,
    options: { defaults: Readonly<TenantSettingsValues>; schedule: CleanupSchedule },
  ) {
    this.defaults = options.defaults;
    this.schedule = options.schedule;
    defineScripts(redis);
  }

  /** Entries in the tenant's (or the user's) index: how many sessions an export will read, expired ones included. */
  indexSize(tenantId: string, userId?: string): Promise<number> {
    return this.redis.zcard(this.indexOf(tenantId, userId));
  }

  /**
   * One ZSCAN step over the tenant's (or user's) index: a few hundred members at most, and the cursor to go on from
   * ("0": done). ZSCAN returns every member that is in the index for the whole walk, whatever the writes meanwhile;
   * a member may come twice only while Redis resizes the index.
   */
  async scanIndex(
    tenantId: string,
    userId: string | undefined,
    cursor: string,
    count: number,
  ): Promise<{ cursor: string; members: string[] }> {
    const [next, flat] = await this.redis.zscan(this.indexOf(tenantId, userId), cursor, "COUNT", count);
    const members: string[] = [];
    for (let i = 0; i < flat.length; i += 2) members.push(flat[i]);
    return { cursor: next, members };
  }

  /** The sessions of index members, each read whole in one script step; null for one that is gone. */
  async read(tenantId: string, members: readonly string[]): Promise<(StoredSession | null)[]> {
    if (members.length === 0) return [];
    const refs = members.map(refFromMember);
    const keys = refs.flatMap((ref) => [
      sessionKey(tenantId, ref.userId, ref.sessionId),
      historyKey(tenantId, ref.userId, ref.sessionId),
    ]);
    const [now, ...sessions] = await this.redis.exportSessions(keys.length, ...keys);
    return sessions.map((session, i) => {
      if (session.length === 0) return null;
      const [pttl, document, ...history] = session as [number, string, ...string[]];
      // PTTL -1 (no expiry) never happens to a session written by the service; keep such a key a day.
      const remainingTtlMs = pttl >= 0 ? pttl : 86_400_000;
      return { ref: refs[i], document, expiresAt: Number(now) + remainingTtlMs, remainingTtlMs, history };
    });
  }

  /** Writes one session as it is, atomically with its indexes, log and announcement; then its tenant's schedule. */
  async write(session: SessionToWrite, mode: ImportMode): Promise<ImportStatus> {
    const { tenantId, userId, sessionId } = session;
    const [status, firstCleanup, interval] = await this.redis.importSession(
      sessionKey(tenantId, userId, sessionId),
      settingsKey(tenantId),
      activityIndexKey(tenantId),
      expiryIndexKey(tenantId),
      userIndexKey(tenantId, userId),
      userExpiryKey(tenantId, userId),
      historyKey(tenantId, userId, sessionId),
      mode,
      session.document,
      String(session.version),
      String(session.lastUpdated),
      String(session.expiresAt),
      String(session.remainingTtlMs),
      indexMember(userId, sessionId),
      String(this.defaults.historyDepth),
      String(this.defaults.cleanupIntervalSeconds),
      changeChannel(tenantId, userId),
      session.change,
      ...session.history,
    );
    if (firstCleanup === FirstCleanup.Needed && !this.scheduled.has(tenantId)) {
      // As after a tenant's first write: the first run one interval from now. An imported lastUpdated may be long
      // past, and a first run due at once would purge whatever looks idle before anyone set the tenant up.
      const now = await redisNow(this.redis, settingsKey(tenantId));
      await this.schedule.scheduleFirstRun(tenantId, now + Number(interval) * 1000);
      if (this.scheduled.size >= 10_000) this.scheduled.clear(); // bounded: forgetting only costs a repeat
      this.scheduled.add(tenantId);
    }
    return status;
  }

  private indexOf(tenantId: string, userId: string | undefined): string {
    return userId === undefined ? activityIndexKey(tenantId) : userIndexKey(tenantId, userId);
  }
}
