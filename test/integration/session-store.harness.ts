import pino from "pino";
import type { Cluster, Redis } from "ioredis";
import type {
  ContextFields,
  JsonObject,
  SessionRecord,
  SessionRef,
  WriteLimits,
} from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import { sessionKey } from "../../src/store/keys";
import { MemorySessionStore } from "../../src/store/memory/memory-session-store";
import { createRedisClient, whenReady, type RedisClient, type RedisSecurity } from "../../src/store/redis/redis-client";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { aclDenials, startManagedRedis } from "../helpers/managed-redis";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { startRedis, type RedisProcess } from "../helpers/redis-server";

/**
 * One SessionStore implementation under the shared contract suite, with the few things a test needs that the
 * interface does not offer: moving the store's clock and observing key expiry. The memory store gets a clock the
 * test controls; the Redis store runs on Redis's own clock (TIME), so "time passes" means waiting for it.
 */
export interface StoreUnderTest {
  readonly store: SessionStore;
  /** Lets at least `ms` milliseconds pass on the clock the store stamps writes with. */
  passTime(ms: number): Promise<void>;
  /**
   * Asserts that the session's key expires at `expiresAt`. Redis: the key's PTTL says so. Memory: the session is
   * still readable 1 ms before and gone at that instant (the check ends the session).
   */
  expectKeyExpiresAt(tenantId: string, ref: SessionRef, expiresAt: Date): Promise<void>;
  /** Resolves once the session has expired on its own (bounded: rejects when it outlives its expiry by 3 s). */
  waitForExpiry(tenantId: string, ref: SessionRef, record: SessionRecord): Promise<void>;
  close(): Promise<void>;
}

export interface RedisStoreUnderTest extends StoreUnderTest {
  readonly store: RedisSessionStore;
  readonly redis: RedisProcess;
  /** Another store on its own client to the same Redis, like another server replica; closed by `close()`. */
  replica(): Promise<RedisSessionStore>;
}

/** The contract's defaults: 24 h TTL, 256 KiB contexts, 100 entries per list. */
export const LIMITS: WriteLimits = Object.freeze({
  defaultTtlSeconds: 86_400,
  maxContextBytes: 262_144,
  maxInterruptedQueries: 100,
  maxRecentInteractions: 100,
});

const silent = pino({ level: "silent" });

async function connectedClient(url: string, security?: RedisSecurity): Promise<Redis> {
  const client = createRedisClient({ url, security, logger: silent });
  if (!(await whenReady(client, 5000))) throw new Error(`Redis at ${url} did not become ready`);
  return client as Redis;
}

async function connectedClusterClient(cluster: RedisClusterProcess): Promise<RedisClient> {
  const client = createRedisClient({
    clusterNodes: cluster.ports.map((port) => ({ host: "127.0.0.1", port })),
    logger: silent,
  });
  if (!(await whenReady(client, 10_000))) throw new Error("the Redis Cluster did not become ready");
  return client;
}

async function redisTimeMs(admin: Redis | Cluster): Promise<number> {
  const [seconds, micros] = await admin.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

async function pollUntil(done: () => Promise<boolean>, deadline: number, what: string): Promise<void> {
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function startRedisStore(): Promise<RedisStoreUnderTest> {
  const redis = await startRedis();
  return startRedisStoreOn(redis, undefined, () => redis.stop());
}

/**
 * The Redis store over TLS, as an ACL user with exactly the README's least-privilege rule (`~tenant:* ~scs:*`, the
 * commands one by one): a command or key the store starts using fails the contract suite until the rule names it.
 * `close()` fails when Redis refused the user anything meanwhile (`ACL LOG`), even a refusal the client swallowed.
 * The test's own checks (TTLs, the clock) go through the admin client.
 */
export async function startLeastPrivilegeStore(): Promise<RedisStoreUnderTest> {
  const managed = await startManagedRedis();
  const security = { username: "scs", password: managed.password, tls: { ca: managed.certificates.ca } };
  const sut = await startRedisStoreOn(managed.redis, security, () => managed.stop());
  return {
    ...sut,
    async close() {
      const denied = await aclDenials(managed.redis.admin);
      await sut.close();
      if (denied.length > 0) throw new Error(`Redis refused the least-privilege user: ${denied.join("; ")}`);
    },
  };
}

/** The store on `redis`, connected with `security`; `close()` closes the stores and then calls `stop`. */
async function startRedisStoreOn(
  redis: RedisProcess,
  security: RedisSecurity | undefined,
  stop: () => Promise<void>,
): Promise<RedisStoreUnderTest> {
  const store = new RedisSessionStore(await connectedClient(redis.url, security));
  const replicas: RedisSessionStore[] = [];
  const keyOf = (tenantId: string, ref: SessionRef) => sessionKey(tenantId, ref.userId, ref.sessionId);
  return {
    store,
    redis,
    async replica() {
      const replica = new RedisSessionStore(await connectedClient(redis.url, security));
      replicas.push(replica);
      return replica;
    },
    async passTime(ms) {
      const start = await redisTimeMs(redis.admin);
      await pollUntil(
        async () => (await redisTimeMs(redis.admin)) >= start + ms,
        Date.now() + ms + 5000,
        "time passed",
      );
    },
    async expectKeyExpiresAt(tenantId, ref, expiresAt) {
      const pttl = await redis.admin.pttl(keyOf(tenantId, ref));
      const keyExpiresAt = (await redisTimeMs(redis.admin)) + pttl;
      expect(pttl).toBeGreaterThan(0);
      // Both instants come from Redis's clock; the slack covers the round trips between the two reads.
      expect(Math.abs(keyExpiresAt - expiresAt.getTime())).toBeLessThanOrEqual(50);
    },
    async waitForExpiry(tenantId, ref, record) {
      const key = keyOf(tenantId, ref);
      await pollUntil(async () => (await redis.admin.exists(key)) === 0, record.expiresAt.getTime() + 3000, "expiry");
    },
    async close() {
      await Promise.all([store, ...replicas].map((s) => s.close()));
      await stop();
    },
  };
}

export interface ClusterStoreUnderTest extends StoreUnderTest {
  readonly store: RedisSessionStore;
  readonly cluster: RedisClusterProcess;
  /** Another store on its own Cluster client, like another server replica; closed by `close()`. */
  replica(): Promise<RedisSessionStore>;
}

/**
 * The Redis store on a real Redis Cluster (3 masters, 3 replicas). Its nodes run on this machine and share its
 * clock, so "Redis's clock" is the same whichever node answers TIME.
 */
export async function startClusterStore(): Promise<ClusterStoreUnderTest> {
  const cluster = await startRedisCluster();
  const replicas: RedisSessionStore[] = [];
  let store: RedisSessionStore;
  try {
    store = new RedisSessionStore(await connectedClusterClient(cluster));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  const keyOf = (tenantId: string, ref: SessionRef) => sessionKey(tenantId, ref.userId, ref.sessionId);
  return {
    store,
    cluster,
    async replica() {
      const replica = new RedisSessionStore(await connectedClusterClient(cluster));
      replicas.push(replica);
      return replica;
    },
    async passTime(ms) {
      const start = await redisTimeMs(cluster.admin);
      await pollUntil(
        async () => (await redisTimeMs(cluster.admin)) >= start + ms,
        Date.now() + ms + 5000,
        "time passed",
      );
    },
    async expectKeyExpiresAt(tenantId, ref, expiresAt) {
      const pttl = await cluster.admin.pttl(keyOf(tenantId, ref));
      const keyExpiresAt = (await redisTimeMs(cluster.admin)) + pttl;
      expect(pttl).toBeGreaterThan(0);
      expect(Math.abs(keyExpiresAt - expiresAt.getTime())).toBeLessThanOrEqual(50);
    },
    async waitForExpiry(tenantId, ref, record) {
      const key = keyOf(tenantId, ref);
      await pollUntil(async () => (await cluster.admin.exists(key)) === 0, record.expiresAt.getTime() + 3000, "expiry");
    },
    async close() {
      await Promise.all([store, ...replicas].map((s) => s.close()));
      await cluster.stop();
    },
  };
}

export async function startMemoryStore(): Promise<StoreUnderTest> {
  let now = Date.now();
  const store = new MemorySessionStore({ now: () => now });
  const present = async (tenantId: string, ref: SessionRef) => (await store.getMany(tenantId, [ref]))[0] !== null;
  return {
    store,
    async passTime(ms) {
      now += ms;
    },
    async expectKeyExpiresAt(tenantId, ref, expiresAt) {
      const before = now;
      now = expiresAt.getTime() - 1;
      expect(await present(tenantId, ref)).toBe(true);
      now = expiresAt.getTime();
      expect(await present(tenantId, ref)).toBe(false);
      now = before; // the session is gone; later steps of the test keep their own time line
    },
    async waitForExpiry(_tenantId, _ref, record) {
      now = Math.max(now, record.expiresAt.getTime());
    },
    close: () => store.close(),
  };
}

/** The stores every contract test runs against, for `describe.each`. */
export const STORES: ReadonlyArray<[name: string, start: () => Promise<StoreUnderTest>]> = [
  ["RedisSessionStore", startRedisStore],
  ["RedisSessionStore over TLS as the least-privilege ACL user", startLeastPrivilegeStore],
  ["RedisSessionStore on a Redis Cluster", startClusterStore],
  ["MemorySessionStore", startMemoryStore],
];

/**
 * The four context fields of a record or stored document, for exact `toEqual` checks (`toMatchObject` would let
 * `{}` match any object and ignore extra nested keys).
 */
export function contextOf(fields: ContextFields): ContextFields {
  const { conversationState, interruptedQueries, recentInteractions, userPreferences } = fields;
  return { conversationState, interruptedQueries, recentInteractions, userPreferences };
}

/** Parses JSON text: the way to build objects whose own keys include "__proto__". */
export function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Values that lossy encoders (Lua cjson, float formatting, UTF-8 round trips) are known to change. */
export const numbers: JsonObject = {
  sum: 0.30000000000000004,
  maxSafe: 9007199254740991,
  minSafe: -9007199254740991,
  huge: 1e300,
  tiniest: 5e-324,
  maxDouble: 1.7976931348623157e308,
  list: [0.1, -1.5e-7, 123456789.12345678],
};
export const empties: JsonObject = { object: {}, array: [], nested: { object: {}, array: [[], {}, [{}]] } };
export const text: JsonObject = {
  emoji: "👩🏽‍💻 🚀 🇯🇵",
  rtl: "مرحبا بالعالم — שלום",
  controls: "nul\u0000 soh\u0001 us\u001f del\u007f \b\f\n\r\t \u2028\u2029",
  loneSurrogates: "\ud800 \udfff \udc00\ud800",
  escapes: 'quote " backslash \\ slash / braces {}[] colon :',
};
export const oddKeys: JsonObject = {
  'a "quoted" key': 1,
  "back\\slash": 2,
  "ключ 🔑": 3,
  "": 4,
  "nul\u0000key": 5,
  "x:y{z}*?[]": 6,
};
export const tricky: JsonObject = { numbers, empties, text, oddKeys };
