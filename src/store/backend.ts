import type { KeyValueCache } from "@apollo/utils.keyvaluecache";
import type { CleanupSchedule } from "../cleanup/cleanup-schedule";
import type { SessionStore } from "../sessions/session-store";
import type { TenantSettingsStore } from "../tenants/tenant-settings-store";
import { MemorySessionStore, type MemorySessionStoreOptions } from "./memory/memory-session-store";
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
 * lifetime via sessions.close.
 */
export function createRedisBackend(redis: RedisClient, reads: RedisClient = redis): Backend {
  const schedule = new RedisCleanupSchedule(redis);
  return {
    sessions: new RedisSessionStore(redis, { reads, schedule }),
    settings: new RedisTenantSettingsStore(redis, schedule),
    schedule,
    queryCache: new RedisQueryCache(redis),
  };
}

/** The embedded backend: one process, in memory, same behaviour. */
export function createMemoryBackend(options: MemorySessionStoreOptions = {}): Backend {
  const sessions = new MemorySessionStore(options);
  return { sessions, settings: sessions.tenants, schedule: sessions.tenants };
}
