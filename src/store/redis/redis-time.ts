import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Result } from "ioredis";
import type { RedisClient } from "./redis-client";
import { toStoreError } from "./redis-errors";

declare module "ioredis" {
  interface RedisCommander<Context> {
    /** See scripts/server-time-1.lua. */
    serverTime(key: string): Result<[seconds: string, micros: string], Context>;
  }
}

const SERVER_TIME = readFileSync(join(__dirname, "scripts", "server-time-1.lua"), "utf8");

/** Registers the script `redisNow` runs; every store that reads the clock calls this in its constructor. */
export function defineServerTime(redis: RedisClient): void {
  redis.defineCommand("serverTime", { numberOfKeys: 1, lua: SERVER_TIME });
}

/**
 * Redis's clock in ms: the one clock every replica and every script agrees on. A plain TIME on a Cluster would go
 * to whichever node the client picks, so the clock is read through a one-key script instead: `routingKey` names the
 * slot, and the node that owns it answers. Pass a key of the tenant when the time is compared with the tenant's
 * `lastUpdated` stamps (their clock is that node's); pass the cleanup schedule key for schedule times.
 */
export async function redisNow(redis: RedisClient, routingKey: string): Promise<number> {
  const [seconds, micros] = await redis.serverTime(routingKey).catch(toStoreError("read"));
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
