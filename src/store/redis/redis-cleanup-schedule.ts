import { randomUUID } from "node:crypto";
import type { CleanupSchedule, DueCleanup } from "../../cleanup/cleanup-schedule";
import { CLEANUP_SCHEDULE_KEY, cleanupLeaseKey, settingsKey } from "../keys";
import type { RedisClient } from "./redis-client";
import { toStoreError } from "./redis-errors";
import { CleanupClaim, defineScripts } from "./redis-scripts";
import { redisNow } from "./redis-time";

/**
 * The cleanup schedule in Redis: the sorted set `scs:cleanup:schedule`, plus per-tenant leases and the `scheduled`
 * flag in each tenant's settings. Every command here names one key, so on a Cluster each goes to the node that owns
 * it.
 */
export class RedisCleanupSchedule implements CleanupSchedule {
  constructor(private readonly redis: RedisClient) {
    defineScripts(redis);
  }

  /**
   * The schedule's clock: the node that owns the schedule key. Due times also come from a tenant's `lastUpdated`
   * (its first write), stamped on that tenant's node; on a Cluster the two clocks differ by the nodes' skew, which
   * only moves a run that is due every minute or more by that much.
   */
  now(): Promise<number> {
    return redisNow(this.redis, CLEANUP_SCHEDULE_KEY);
  }

  async due(now: number, limit: number): Promise<DueCleanup[]> {
    const flat = await this.redis
      .zrangebyscore(CLEANUP_SCHEDULE_KEY, "-inf", now, "WITHSCORES", "LIMIT", 0, limit)
      .catch(toStoreError("read"));
    const due: DueCleanup[] = [];
    for (let i = 0; i < flat.length; i += 2) due.push({ tenantId: flat[i], dueAt: Number(flat[i + 1]) });
    return due;
  }

  async claim(tenantId: string, dueAt: number, nextAt: number): Promise<boolean> {
    const claimed = await this.redis
      .claimCleanup(CLEANUP_SCHEDULE_KEY, tenantId, String(dueAt), String(nextAt))
      .catch(toStoreError("write"));
    return claimed === CleanupClaim.Claimed;
  }

  async scheduleFirstRun(tenantId: string, at: number): Promise<void> {
    await this.redis.zadd(CLEANUP_SCHEDULE_KEY, "NX", at, tenantId).catch(toStoreError("write"));
    await this.markScheduled(tenantId);
  }

  async reschedule(tenantId: string, at: number): Promise<void> {
    await this.redis.zadd(CLEANUP_SCHEDULE_KEY, at, tenantId).catch(toStoreError("write"));
    await this.markScheduled(tenantId);
  }

  /**
   * The `scheduled` flag in the tenant's settings, which write-session-7.lua reads (in the tenant's slot) to tell
   * whether the tenant still has to be put on the schedule. Set only after the schedule has the tenant: if putting
   * it there fails, the flag stays unset and the tenant's next write asks again.
   */
  private async markScheduled(tenantId: string): Promise<void> {
    await this.redis.hset(settingsKey(tenantId), "scheduled", "1").catch(toStoreError("write"));
  }

  async nextRun(tenantId: string): Promise<number | null> {
    const score = await this.redis.zscore(CLEANUP_SCHEDULE_KEY, tenantId).catch(toStoreError("read"));
    return score === null ? null : Number(score);
  }

  async acquireLease(tenantId: string, ttlMs: number): Promise<string | null> {
    const token = randomUUID();
    const ok = await this.redis.set(cleanupLeaseKey(tenantId), token, "PX", ttlMs, "NX").catch(toStoreError("write"));
    return ok === "OK" ? token : null;
  }

  async releaseLease(tenantId: string, token: string): Promise<void> {
    await this.redis.releaseLease(cleanupLeaseKey(tenantId), token).catch(toStoreError("write"));
  }

  async recordRun(tenantId: string, at: number, purged: number): Promise<void> {
    await this.redis
      .hset(settingsKey(tenantId), { lastCleanupAt: String(at), lastCleanupPurged: String(purged) })
      .catch(toStoreError("write"));
  }
}
