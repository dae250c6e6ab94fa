import type { KeyValueCache } from "@apollo/utils.keyvaluecache";
import pino, { type Logger } from "pino";
import type { CleanupSchedule } from "../cleanup/cleanup-schedule";
import type { SessionChangeFeed } from "../live/session-change-feed";
import type { Config } from "../config";
import type { SessionStore } from "../sessions/session-store";
import { DEFAULT_TENANT_SETTINGS } from "../tenants/tenant-settings";
import type { TenantSettingsStore } from "../tenants/tenant-settings-store";
import { MemorySessionStore } from "./memory/memory-session-store";
import {
  createReadConnection,
  createRedisClient,
  unansweredCommands,
  whenReady,
  type RedisClient,
  type RedisTarget,
} from "./redis/redis-client";
import { RedisChangeFeed } from "./redis/redis-change-feed";
import { RedisCleanupSchedule } from "./redis/redis-cleanup-schedule";
import { RedisQueryCache } from "./redis/redis-query-cache";
import { RedisSessionStore } from "./redis/redis-session-store";
import { RedisTenantSettingsStore } from "./redis/redis-tenant-settings-store";

/** Everything kept in one store: sessions, tenant settings and the cleanup schedule. */
export interface Backend {
  readonly sessions: SessionStore;
  readonly settings: TenantSettingsStore;
  readonly schedule: CleanupSchedule;
  /**
   * Where this process hears of session writes and deletions, its own and other replicas' (live updates). Closed
   * separately from the store: `changes.close()` before `sessions.close()`.
   */
  readonly changes: SessionChangeFeed;
  /** Where automatic persisted queries are kept; undefined: Apollo's in-memory cache (one process). */
  readonly queryCache?: KeyValueCache<string>;
  /**
   * The client the Redis stores write through (undefined for the embedded store), for tests that watch its command
   * queue. Closed, with the read connection, by `sessions.close`.
   */
  readonly redis?: RedisClient;
  /**
   * Store commands in flight now: sent (or waiting in an auto-pipeline) and not answered by Redis yet, timed-out ones
   * included (unansweredCommands). Undefined for the embedded store, which has nothing in flight.
   */
  readonly commandsInFlight?: () => number;
}

/**
 * The backend the configuration names, for the server (main.ts) and the tests' server alike: with a Redis, its client
 * and a read connection, waited for up to 5 s each; without one, the embedded store, with a warning. Serves either
 * way: /health/ready answers 503 until Redis is reachable, and the clients keep reconnecting.
 */
export async function createBackend(config: Config, logger: Logger): Promise<Backend> {
  const target = redisTarget(config);
  if (target) {
    const redisLogger = logger.child({ component: "redis" });
    const redis = createRedisClient({ ...target, security: config.redisSecurity, logger: redisLogger });
    redisLogger.info({ mode: "url" in target ? "single" : "clusterNodes" in target ? "cluster" : "sentinel" }, "redis");
    const reads = createReadConnection(redis, redisLogger);
    const [ready, readsReady] = await Promise.all([whenReady(redis, 5000), whenReady(reads, 5000)]);
    if (!ready || !readsReady) logger.warn("Redis is not reachable yet; starting anyway, not ready");
    return { ...createRedisBackend(redis, reads, redisLogger), redis };
  }
  logger.warn(
    { store: "memory" },
    "no Redis configured (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS): using the embedded in-process store (one process only, not durable; for local use)",
  );
  return createMemoryBackend();
}

/** Which Redis the configuration names: one URL, a Cluster or Sentinels (config allows at most one). */
function redisTarget(config: Config): RedisTarget | undefined {
  if (config.redisUrl) return { url: config.redisUrl };
  if (config.redisCluster) return { clusterNodes: config.redisCluster };
  if (config.redisSentinel)
    return { sentinels: config.redisSentinel.sentinels, sentinelName: config.redisSentinel.name };
  return undefined;
}

/**
 * All of them on one Redis client — one Redis, Sentinel-managed or a Cluster — with session reads on `reads`
 * (createReadConnection; by default the same client). Injected: the caller owns their configuration, and their
 * lifetime via sessions.close. The stores get the tenant defaults here, and the schedule they put tenants on.
 */
export function createRedisBackend(
  redis: RedisClient,
  reads: RedisClient = redis,
  logger: Logger = pino({ enabled: false }),
): Backend {
  const schedule = new RedisCleanupSchedule(redis);
  const defaults = DEFAULT_TENANT_SETTINGS;
  return {
    commandsInFlight: () => unansweredCommands(redis) + (reads === redis ? 0 : unansweredCommands(reads)),
    sessions: new RedisSessionStore(redis, { defaults, schedule, reads }),
    settings: new RedisTenantSettingsStore(redis, { defaults, schedule }),
    schedule,
    // Its own subscriber connection, opened on the first subscription.
    changes: new RedisChangeFeed(redis, logger),
    queryCache: new RedisQueryCache(redis),
  };
}

/** The embedded backend: one process, in memory, same behaviour; its tenant state is the settings and the schedule. */
export function createMemoryBackend(options: { now?: () => number } = {}): Backend {
  const sessions = new MemorySessionStore({ defaults: DEFAULT_TENANT_SETTINGS, now: options.now });
  return { sessions, settings: sessions.tenants, schedule: sessions.tenants, changes: sessions.changes };
}
