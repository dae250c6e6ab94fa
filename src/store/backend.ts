import type { KeyValueCache } from "@apollo/utils.keyvaluecache";
import type { CleanupSchedule } from "../cleanup/cleanup-schedule";
import type { SessionStore } from "../sessions/session-store";
import { DEFAULT_TENANT_SETTINGS } from "../tenants/tenant-settings";
import type { TenantSettingsStore } from "../tenants/tenant-settings-store";
import { MemorySessionStore } from "./memory/memory-session-store";
import type { RedisClient } from "./redis/redis-client";
import { RedisCleanupSchedule } from "./redis/redis-cleanup-schedule";
import { RedisQueryCache } from "./redis/redis-query-cache";
import { RedisSessionStore } from "./redis/redis-session-store";
import { RedisTenantSettingsStore } from "./redis/redis-tenant-settings-store";

/** Everything kept in one store: sessions, tenant settings and the cleanup schedule. */
export interface Backend {
  readonly sessions: SessionStore;
  readonly settings: TenantSettingsStore;
  readonly schedule: CleanupSchedule;
  /** Where automatic persisted queries are kept; undefined: Apollo's in-memory cache (one process). */
  readonly queryCache?: KeyValueCache<string>;
}

/**
 * All of them on one Redis client — one Redis, Sentinel-managed or a Cluster — with session reads on `reads`
 * (createReadConnection; by default the same client). Injected: the caller owns their configuration, and their
 * lifetime via sessions.close. The stores get the tenant defaults here, and the schedule they put tenants on.
 */
export function createRedisBackend(redis: RedisClient, reads: RedisClient = redis): Backend {
  const schedule = new RedisCleanupSchedule(redis);
  const defaults = DEFAULT_TENANT_SETTINGS;
  return {
    sessions: new RedisSessionStore(redis, { defaults, schedule, reads }),
    settings: new RedisTenantSettingsStore(redis, { defaults, schedule }),
    schedule,
    queryCache: new RedisQueryCache(redis),
  };
}

/** The embedded backend: one process, in memory, same behaviour; its tenant state is the settings and the schedule. */
export function createMemoryBackend(): Backend {
  const sessions = new MemorySessionStore({ defaults: DEFAULT_TENANT_SETTINGS });
  return { sessions, settings: sessions.tenants, schedule: sessions.tenants };
}
