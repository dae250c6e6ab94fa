import "reflect-metadata";
import { createAuthenticator } from "./auth/authenticator";
import { ConfigError, loadConfig, type Config } from "./config";
import { createLogger } from "./logger";
import { createServer } from "./server";
import type { Logger } from "pino";
import { CleanupScheduler } from "./cleanup/cleanup-scheduler";
import { createMemoryBackend, createRedisBackend, type Backend } from "./store/backend";
import { createReadConnection, createRedisClient, whenReady, type RedisTarget } from "./store/redis/redis-client";

/**
 * Composition root: config → logger → store → schema → server → listen → cleanup scheduler; shutdown on
 * SIGTERM/SIGINT.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) {
      process.stderr.write(`${JSON.stringify({ level: "fatal", msg: `invalid configuration: ${problem}` })}\n`);
    }
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const backend = await createBackend(config, logger);
  const server = await createServer({ config, logger, backend, authenticator: createAuthenticator(config.auth) });
  const address = await server.listen(config.port, config.host);
  logger.info(
    { port: address.port, host: config.host, store: backend.sessions.kind, authMode: config.auth.mode },
    `serving http://localhost:${address.port}/graphql`,
  );
  const scheduler = new CleanupScheduler({
    ...backend,
    logger: logger.child({ component: "cleanup" }),
    // Look often enough to start a run within a quarter of the shortest interval a tenant may set, at most 5 s late.
    tickMs: Math.min(5000, Math.max(100, (config.cleanupMinIntervalSeconds * 1000) / 4)),
  });
  scheduler.start();

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    Promise.all([server.stop(), scheduler.stop()])
      .then(() => backend.sessions.close())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

/** Which Redis the configuration names: one URL, a Cluster or Sentinels (config allows at most one). */
function redisTarget(config: Config): RedisTarget | undefined {
  if (config.redisUrl) return { url: config.redisUrl };
  if (config.redisCluster) return { clusterNodes: config.redisCluster };
  if (config.redisSentinel)
    return { sentinels: config.redisSentinel.sentinels, sentinelName: config.redisSentinel.name };
  return undefined;
}

async function createBackend(config: Config, logger: Logger): Promise<Backend> {
  const target = redisTarget(config);
  if (target) {
    const redisLogger = logger.child({ component: "redis" });
    const redis = createRedisClient({ ...target, security: config.redisSecurity, logger: redisLogger });
    redisLogger.info({ mode: "url" in target ? "single" : "clusterNodes" in target ? "cluster" : "sentinel" }, "redis");
    const reads = createReadConnection(redis, redisLogger);
    // Serve either way: /health/ready answers 503 until Redis is reachable, and the clients keep reconnecting.
    const [ready, readsReady] = await Promise.all([whenReady(redis, 5000), whenReady(reads, 5000)]);
    if (!ready || !readsReady) logger.warn("Redis is not reachable yet; starting anyway, not ready");
    return createRedisBackend(redis, reads);
  }
  logger.warn(
    { store: "memory" },
    "no Redis configured (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS): using the embedded in-process store (one process only, not durable; for local use)",
  );
  return createMemoryBackend();
}

main().catch((error: unknown) => {
  process.stderr.write(`${JSON.stringify({ level: "fatal", msg: "start-up failed", err: String(error) })}\n`);
  process.exit(1);
});
