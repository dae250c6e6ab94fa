/**
 * `npm run bench:purge` — the orphan purge at scale, against a redis-server of its own on a free loopback port.
 *
 * Seeds SESSIONS sessions of one tenant (1% of them written a few seconds before the rest, so they are the
 * orphans), then finds the orphans the naive way (SCAN MATCH over the keyspace, GET and parse each session) and
 * purges them with purgeOrphans, which reads only the tenant's activity index in bounded batches. Prints and
 * writes bench/results/purge-scale.json: durations, counts, and the slowest single Redis command (SLOWLOG).
 */
import "reflect-metadata";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Redis } from "ioredis";
import pino from "pino";
import { startRedis } from "../test/helpers/redis-server";
import { sessionKey } from "../src/store/keys";
import { createRedisClient, whenReady } from "../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../src/store/redis/redis-session-store";
import { DEFAULT_TENANT_SETTINGS } from "../src/tenants/tenant-settings";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200_000);
const ORPHANS = Math.round(SESSIONS / 100);
const GAP_MS = 3000;
const IN_FLIGHT = 256;
const LIMITS = { maxContextBytes: 262_144 };

async function main(): Promise<void> {
  const redis = await startRedis();
  const client = createRedisClient({ url: redis.url, logger: pino({ level: "silent" }), commandTimeoutMs: 30_000 });
  await whenReady(client, 5000);
  const store = new RedisSessionStore(client, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(client),
  });
  const tenant = "bench-tenant";
  const redisNow = async () => {
    const [s, us] = await redis.admin.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  const seed = async (from: number, to: number) => {
    let next = from;
    const worker = async () => {
      for (let i = next++; i < to; i = next++) {
        await store.merge(
          tenant,
          { userId: `user-${i % 5000}`, sessionId: `session-${i}` },
          { conversationState: { topic: `t${i}`, step: i % 17 }, recentInteractions: [{ q: "hello", a: "hi", n: i }] },
          LIMITS,
        );
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  };

  const seedStarted = performance.now();
  await seed(0, ORPHANS);
  const orphansWritten = await redisNow();
  while ((await redisNow()) < orphansWritten + GAP_MS) await new Promise((r) => setTimeout(r, 50));
  const freshFrom = await redisNow();
  await seed(ORPHANS, SESSIONS);
  const seedMs = performance.now() - seedStarted;
  // A threshold that puts the cut-off inside the gap: every orphan is older, every other session younger.
  const olderThanSeconds = Math.ceil(((await redisNow()) - freshFrom) / 1000) + 1;
  const cutoff = (await redisNow()) - olderThanSeconds * 1000;

  await redis.admin.config("SET", "slowlog-log-slower-than", "0");
  await redis.admin.config("SET", "slowlog-max-len", "1000000");

  // The naive way: walk the whole keyspace for the tenant's session keys, read each one, keep the old ones.
  await redis.admin.slowlog("RESET");
  const naiveStarted = performance.now();
  const pattern = `${sessionKey(tenant, "*", "*").replace(/%2A/g, "*")}`;
  let cursor = "0";
  let naiveOrphans = 0;
  let scanned = 0;
  do {
    const [nextCursor, keys] = await redis.admin.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = nextCursor;
    if (keys.length === 0) continue;
    scanned += keys.length;
    const values = await redis.admin.mget(keys);
    for (const value of values) if (value !== null && JSON.parse(value).lastUpdated < cutoff) naiveOrphans++;
  } while (cursor !== "0");
  const naiveMs = performance.now() - naiveStarted;
  const naiveSlowest = await slowest(redis.admin);

  await redis.admin.slowlog("RESET");
  const purgeStarted = performance.now();
  const purged = await store.purgeOrphans(tenant, olderThanSeconds);
  const purgeMs = performance.now() - purgeStarted;
  const purgeSlowest = await slowest(redis.admin);
  const left = await redis.admin.dbsize();

  const result = {
    machine: `${process.platform} ${process.arch}, node ${process.version}`,
    sessions: SESSIONS,
    orphans: ORPHANS,
    seedSeconds: +(seedMs / 1000).toFixed(1),
    purge: {
      purged,
      durationMs: +purgeMs.toFixed(1),
      slowestCommandMicros: purgeSlowest.micros,
      slowestCommand: purgeSlowest.command,
    },
    naiveScan: {
      found: naiveOrphans,
      keysRead: scanned,
      durationMs: +naiveMs.toFixed(1),
      slowestCommandMicros: naiveSlowest.micros,
      slowestCommand: naiveSlowest.command,
      note: "finding only (no deletes): SCAN MATCH over the whole keyspace, MGET of every match",
    },
    exact: purged === ORPHANS && naiveOrphans === ORPHANS,
    keysLeft: left,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  mkdirSync(join(__dirname, "results"), { recursive: true });
  writeFileSync(join(__dirname, "results", "purge-scale.json"), `${JSON.stringify(result, null, 2)}\n`);
  await store.close();
  await redis.stop();
  if (!result.exact) process.exitCode = 1;
}

async function slowest(admin: Redis): Promise<{ micros: number; command: string }> {
  const entries = (await admin.slowlog("GET", 1_000_000)) as [number, number, number, string[]][];
  let worst = { micros: 0, command: "" };
  for (const [, , micros, args] of entries) {
    if (args[0]?.toLowerCase() === "slowlog") continue;
    if (micros > worst.micros) worst = { micros, command: args.slice(0, 2).join(" ").slice(0, 60) };
  }
  return worst;
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
