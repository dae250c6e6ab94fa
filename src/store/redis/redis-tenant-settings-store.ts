import type { CleanupSchedule } from "../../cleanup/cleanup-schedule";
import { SETTING_NAMES, type TenantSettingsRecord, type TenantSettingsValues } from "../../tenants/tenant-settings";
import type { TenantSettingsStore } from "../../tenants/tenant-settings-store";
import { settingsKey } from "../keys";
import type { RedisClient } from "./redis-client";
import { toStoreError } from "./redis-errors";

/** What a RedisTenantSettingsStore works with besides its client. */
export interface RedisTenantSettingsStoreOptions {
  /** What a tenant has until it sets its own (normally DEFAULT_TENANT_SETTINGS). */
  readonly defaults: Readonly<TenantSettingsValues>;
  /** Where the tenant's next cleanup run is read and, after a settings change, set. */
  readonly schedule: CleanupSchedule;
}

/**
 * Tenant settings in the hash `tenant:{<tenant>}:settings` (the write script reads the TTL and list caps from it
 * in the same atomic step as each write), with the cleanup bookkeeping `lastCleanupAt`, `lastCleanupPurged` and
 * the `scheduled` flag. The next run lives in the cross-tenant cleanup schedule, which this store reads and changes
 * only through the CleanupSchedule.
 */
export class RedisTenantSettingsStore implements TenantSettingsStore {
  private readonly schedule: CleanupSchedule;
  private readonly defaults: Readonly<TenantSettingsValues>;

  constructor(
    private readonly redis: RedisClient,
    options: RedisTenantSettingsStoreOptions,
  ) {
    this.schedule = options.schedule;
    this.defaults = options.defaults;
  }

  async get(tenantId: string): Promise<TenantSettingsRecord> {
    const [hash, next] = await Promise.all([
      this.redis.hgetall(settingsKey(tenantId)).catch(toStoreError("read")),
      this.schedule.nextRun(tenantId),
    ]);
    const values = { ...this.defaults };
    for (const name of SETTING_NAMES) if (hash[name] !== undefined) values[name] = Number(hash[name]);
    return {
      tenantId,
      ...values,
      lastCleanupAt: hash.lastCleanupAt ? new Date(Number(hash.lastCleanupAt)) : null,
      lastCleanupPurged: hash.lastCleanupPurged !== undefined ? Number(hash.lastCleanupPurged) : null,
      nextCleanupAt: next !== null ? new Date(next) : null,
    };
  }

  async update(tenantId: string, patch: Partial<TenantSettingsValues>): Promise<TenantSettingsRecord> {
    const fields: Record<string, string> = {};
    for (const name of SETTING_NAMES) if (patch[name] !== undefined) fields[name] = String(patch[name]);
    if (Object.keys(fields).length > 0)
      await this.redis.hset(settingsKey(tenantId), fields).catch(toStoreError("write"));

    // A changed interval counts from now; a tenant not yet scheduled gets its first run one interval from now.
    const interval =
      patch.cleanupIntervalSeconds ??
      Number(
        (await this.redis.hget(settingsKey(tenantId), "cleanupIntervalSeconds").catch(toStoreError("read"))) ??
          this.defaults.cleanupIntervalSeconds,
      );
    const at = (await this.schedule.now()) + interval * 1000;
    if (patch.cleanupIntervalSeconds !== undefined) await this.schedule.reschedule(tenantId, at);
    else await this.schedule.scheduleFirstRun(tenantId, at);
    return this.get(tenantId);
  }
}
