import type { KeyValueCache, KeyValueCacheSetOptions } from "@apollo/utils.keyvaluecache";
import { persistedQueryKey } from "../keys";
import type { RedisClient } from "./redis-client";

/**
 * Apollo's persisted-query cache in Redis, so every replica knows a query any of them has seen. A cache, not a
 * store of record: when Redis fails, a lookup is a miss (the client then sends the full query) and a write is
 * skipped, so persisted queries never turn a Redis problem into a failed request.
 */
export class RedisQueryCache implements KeyValueCache<string> {
  constructor(private readonly redis: RedisClient) {}

  async get(key: string): Promise<string | undefined> {
    try {
      return (await this.redis.get(persistedQueryKey(key))) ?? undefined;
    } catch {
      return undefined;
    }
  }

  async set(key: string, value: string, options?: KeyValueCacheSetOptions): Promise<void> {
    try {
      if (options?.ttl) await this.redis.set(persistedQueryKey(key), value, "EX", Math.ceil(options.ttl));
      else await this.redis.set(persistedQueryKey(key), value);
    } catch {
      // a miss next time: the client resends the query
    }
  }

  async delete(key: string): Promise<boolean | void> {
    try {
      return (await this.redis.del(persistedQueryKey(key))) === 1;
    } catch {
      return false;
    }
  }
}
