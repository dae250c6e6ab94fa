import type { RedisClient } from "./redis-client";
import { toStoreError } from "./redis-errors";

/**
 * Redis's clock in ms: the one clock every replica and every script agrees on. A plain TIME on a Cluster would go
 * to whichever node the client picks, so the clock is read through a one-key script instead (server-time-1.lua, which
 * the stores register with defineScripts): `routingKey` names the slot, and the node that owns it answers. Pass a
 * key of the tenant when the time is compared with the tenant's `lastUpdated` stamps (their clock is that node's);
 * pass the cleanup schedule key for schedule times.
 */
export async function redisNow(redis: RedisClient, routingKey: string): Promise<number> {
  const [seconds, micros] = await redis.serverTime(routingKey).catch(toStoreError("read"));
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
