import { Redis } from "ioredis";
import type { Logger } from "pino";

/** Options of the Redis client factory. */
export interface RedisClientOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Longest wait for one command before it fails with SERVICE_UNAVAILABLE. Default 1000 ms. */
  commandTimeoutMs?: number;
  /** Longest wait for a connection attempt. Default 1000 ms. */
  connectTimeoutMs?: number;
  logger: Logger;
}

/**
 * Creates the ioredis client the way an API server needs it: fail fast instead of queueing.
 *
 * - No offline queue: while disconnected, commands fail at once instead of piling up in memory.
 * - No per-request retries and no resending after a reconnect: a merge is not idempotent, so a command that may
 *   have run is never sent twice; the caller gets SERVICE_UNAVAILABLE and decides.
 * - A command timeout bounds every call, including against a paused or overloaded Redis.
 * - Reconnects forever with a capped backoff, so the server recovers by itself when Redis is back.
 */
export function createRedisClient(options: RedisClientOptions): Redis {
  const { logger } = options;
  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 1000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 5), 1000),
    lazyConnect: false,
  });
  let warnedSinceReady = false;
  redis.on("ready", () => {
    warnedSinceReady = false;
    logger.info({ event: "redis.ready" }, "redis connection ready");
  });
  redis.on("error", (error: Error) => {
    // ioredis emits an error per failed attempt; one warning per outage is enough.
    if (!warnedSinceReady) logger.warn({ event: "redis.error", err: error.message }, "redis connection error");
    warnedSinceReady = true;
  });
  redis.on("end", () => logger.info({ event: "redis.end" }, "redis connection closed"));
  return redis;
}

/** Resolves true once the client is ready, or false after `timeoutMs` (the client keeps trying either way). */
export function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      resolve(false);
    }, timeoutMs);
    redis.once("ready", onReady);
  });
}
