import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster, Redis } from "ioredis";
import pino from "pino";
import { createInterrupt, type Interrupt } from "../../src/data/interrupt";
import type { Progress } from "../../src/data/progress";
import { RedisCleanupSchedule } from "../../src/store/redis/redis-cleanup-schedule";
import { createRedisClient, whenReady, type RedisClient } from "../../src/store/redis/redis-client";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { RedisSessionTransfer } from "../../src/store/redis/redis-session-transfer";
import { DEFAULT_TENANT_SETTINGS } from "../../src/tenants/tenant-settings";
import { startRedis, type RedisProcess } from "./redis-server";

/** The service's limits as the data tool gets them from the configuration (the defaults). */
export const TOOL_LIMITS = { maxContextBytes: 262_144, maxTtlSeconds: 2_592_000 };

export function storeOn(client: RedisClient): RedisSessionStore {
  return new RedisSessionStore(client, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(client),
  });
}

export function transferOn(client: RedisClient): RedisSessionTransfer {
  return new RedisSessionTransfer(client, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(client),
  });
}

/**
 * What a command is given instead of a terminal: the problem lines it shows are collected, and `stopAt` asks the
 * command to stop once its progress reached that many units (as Ctrl-C would), to test resuming.
 */
export function quietDeps(stopAt = Infinity): { progress: Progress; interrupt: Interrupt; shown: string[] } {
  const interrupt = createInterrupt();
  const shown: string[] = [];
  return {
    interrupt,
    shown,
    progress: {
      start() {},
      update(done) {
        if (done >= stopAt) interrupt.request();
      },
      log: (line) => void shown.push(line),
      stop() {},
    },
  };
}

/**
 * Every key of a Redis matching `pattern` (small test data sets only: KEYS is fine in a test) with its value as text
 * and its expiry (PEXPIRETIME: epoch ms, -1 for none), so that two dumps taken moments apart compare.
 */
export async function dump(
  admin: Redis | Cluster,
  pattern: string,
): Promise<Map<string, { value: string; expiresAt: number }>> {
  const nodes =
    "nodes" in admin && typeof admin.nodes === "function" ? (admin as Cluster).nodes("master") : [admin as Redis];
  const result = new Map<string, { value: string; expiresAt: number }>();
  for (const node of nodes) {
    for (const key of await node.keys(pattern)) {
      const type = await node.type(key);
      const value =
        type === "string"
          ? ((await node.get(key)) ?? "")
          : type === "list"
            ? JSON.stringify(await node.lrange(key, 0, -1))
            : type === "zset"
              ? JSON.stringify(await node.zrange(key, 0, -1, "WITHSCORES"))
              : JSON.stringify(await node.hgetall(key));
      result.set(key, { value, expiresAt: Number(await node.call("PEXPIRETIME", key)) });
    }
  }
  return result;
}

/** Two Redis servers a data test moves sessions between, a client of each, and a scratch folder for files. */
export interface SourceAndTarget {
  source: RedisProcess;
  target: RedisProcess;
  sourceClient: RedisClient;
  targetClient: RedisClient;
  dir: string;
}

/**
 * Registers hooks that start a source and a target redis-server (with clients whose command timeout suits bulk
 * work) and a scratch folder named `<folderPrefix>…` before the file's tests, and remove them all after;
 * `started` receives them.
 */
export function useSourceAndTarget(folderPrefix: string, started: (pair: SourceAndTarget) => void): void {
  let pair: SourceAndTarget | undefined;
  const client = async (url: string) => {
    const redis = createRedisClient({ url, logger: pino({ enabled: false }), commandTimeoutMs: 10_000 });
    await whenReady(redis, 5000);
    return redis;
  };
  beforeAll(async () => {
    const [source, target] = await Promise.all([startRedis(), startRedis()]);
    const [sourceClient, targetClient] = await Promise.all([client(source.url), client(target.url)]);
    pair = { source, target, sourceClient, targetClient, dir: mkdtempSync(join(tmpdir(), folderPrefix)) };
    started(pair);
  });
  afterAll(async () => {
    if (!pair) return;
    await Promise.all([pair.sourceClient.quit(), pair.targetClient.quit()]);
    await Promise.all([pair.source.stop(), pair.target.stop()]);
    rmSync(pair.dir, { recursive: true, force: true });
  });
}
