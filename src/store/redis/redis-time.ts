import type { Redis } from "ioredis";
import { toStoreError } from "./redis-errors";

/** Redis's clock in ms: the one clock every replica and every script agrees on. */
export async function redisNow(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time().catch(toStoreError("read"));
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
