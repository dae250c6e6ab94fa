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
import { DEFAULT_TENANT_SETTINGS, type TenantSettingsValues } from "../../src/tenants/tenant-settings";
import { sessionKey } from "../../src/store/keys";
import { MemorySessionStore } from "../../src/store/memory/memory-session-store";
import { createRedisClient, whenReady, type RedisClient, type RedisSecurity } from "../../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { aclDenials, startManagedRedis } from "../helpers/managed-redis";
import { pollUntil } from "../helpers/poll";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { startRedis, timeReplyMs, waitForRedisClock, type RedisProcess } from "../helpers/redis-server";

/**
 * One SessionStore implementation under the shared contract suite, with the few things a test needs that the
 * interface does not offer: moving the store's clock, observing key expiry, and stores with other tenant defaults on
 * the same data. The memory store gets a clock the test controls; the Redis store runs on Redis's own clock (TIME),
 * so "time passes" means waiting for it.
 */
export interface StoreUnderTest {
  readonly store: SessionStore;
  /**
   * Another store on the same sessions whose tenants default to DEFAULTS with `changed` over them, as a replica
   * configured with other defaults would be: a store takes its tenant defaults in its constructor, and the contract
   * checks that a write applies the defaults of the store that runs it. Closed with `store`.
   */
  withDefaults(changed: Partial<TenantSettingsValues>): SessionStore;
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
  /**
   * Another store on its own client to the same Redis, like another server replica (its tenant defaults: DEFAULTS
   * with `changed` over them); closed by `close()`.
   */
  replica(changed?: Partial<TenantSettingsValues>): Promise<RedisSessionStore>;
}

/** The tenant defaults every store under test is built with: 24 h TTL, 100 entries per list, the rest the service's. */
export const DEFAULTS: Readonly<TenantSettingsValues> = Object.freeze({
  ...DEFAULT_TENANT_SETTINGS,
  defaultTtlSeconds: 86_400,
  maxInterruptedQueries: 100,
  maxRecentInteractions: 100,
});

/**
 * The contract's limits: 256 KiB contexts. A store bounds a write by `maxContextBytes` only; the defaults it was built
 * with (DEFAULTS) ride along so that tests can compare with them.
 */
export const LIMITS: Readonly<WriteLimits & TenantSettingsValues> = Object.freeze({
  ...DEFAULTS,
  maxContextBytes: 262_144,
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

/**
 * Asserts that `key` expires at `expiresAt` on Redis's clock. PTTL and TIME are read in one MULTI, at one instant:
 * a round trip between two reads, or this process pausing between them on a loaded machine, would add its length
 * to the result. The 50 ms slack is kept as it was; it now only has milliseconds' rounding to cover.
 */
async function expectKeyExpiresAt(admin: Redis | Cluster, key: string, expiresAt: Date): Promise<void> {
  const replies = await admin.multi().pttl(key).time().exec();
  const [[, pttl], [, time]] = replies as [[null, number], [null, [string, string]]];
  const keyExpiresAt = timeReplyMs(time) + pttl;
  expect(pttl).toBeGreaterThan(0);
  expect(Math.abs(keyExpiresAt - expiresAt.getTime())).toBeLessThanOrEqual(50);
}

/**
 * A Redis store on `client` with the cleanup schedule on that client, as createRedisBackend wires them; its tenant
 * defaults are DEFAULTS with `changed` over them.
 */
function redisStore(client: RedisClient, changed: Partial<TenantSettingsValues> = {}): RedisSessionStore {
  return new RedisSessionStore(client, {
    defaults: { ...DEFAULTS, ...changed },
    schedule: new RedisCleanupSchedule(client),
  });
}

/** Waits (polling Redis, which announces no expiry) until the session's key is gone, at most 3 s past its expiry. */
async function waitForKeyExpiry(admin: Redis | Cluster, key: string, record: SessionRecord): Promise<void> {
  await pollUntil(`${key} expired`, async () => (await admin.exists(key)) === 0, {
    timeoutMs: record.expiresAt.getTime() + 3000 - Date.now(),
    intervalMs: 10,
  });
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
  const client = await connectedClient(redis.url, security);
  const store = redisStore(client);
  const replicas: RedisSessionStore[] = [];
  const keyOf = (tenantId: string, ref: SessionRef) => sessionKey(tenantId, ref.userId, ref.sessionId);
  return {
    store,
    redis,
    withDefaults: (changed) => redisStore(client, changed),
    async replica(changed) {
      const replica = redisStore(await connectedClient(redis.url, security), changed);
      replicas.push(replica);
      return replica;
    },
    passTime: (ms) => waitForRedisClock(redis.admin, ms),
    expectKeyExpiresAt: (tenantId, ref, expiresAt) => expectKeyExpiresAt(redis.admin, keyOf(tenantId, ref), expiresAt),
    waitForExpiry: (tenantId, ref, record) => waitForKeyExpiry(redis.admin, keyOf(tenantId, ref), record),
    async close() {
      await Promise.all([store, ...replicas].map((s) => s.close()));
      await stop();
    },
  };
}

export interface ClusterStoreUnderTest extends StoreUnderTest {
  readonly store: RedisSessionStore;
  readonly cluster: RedisClusterProcess;
  /** Another store on its own Cluster client, like another server replica (defaults as `replica` above). */
  replica(changed?: Partial<TenantSettingsValues>): Promise<RedisSessionStore>;
}

/**
 * The Redis store on a real Redis Cluster (3 masters, 3 replicas). Its nodes run on this machine and share its
 * clock, so "Redis's clock" is the same whichever node answers TIME.
 */
export async function startClusterStore(): Promise<ClusterStoreUnderTest> {
  const cluster = await startRedisCluster();
  const replicas: RedisSessionStore[] = [];
  let client: RedisClient;
  try {
    client = await connectedClusterClient(cluster);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  const store = redisStore(client);
  const keyOf = (tenantId: string, ref: SessionRef) => sessionKey(tenantId, ref.userId, ref.sessionId);
  return {
    store,
    cluster,
    withDefaults: (changed) => redisStore(client, changed),
    async replica(changed) {
      const replica = redisStore(await connectedClusterClient(cluster), changed);
      replicas.push(replica);
      return replica;
    },
    passTime: (ms) => waitForRedisClock(cluster.admin, ms),
    expectKeyExpiresAt: (tenantId, ref, expiresAt) =>
      expectKeyExpiresAt(cluster.admin, keyOf(tenantId, ref), expiresAt),
    waitForExpiry: (tenantId, ref, record) => waitForKeyExpiry(cluster.admin, keyOf(tenantId, ref), record),
    async close() {
      await Promise.all([store, ...replicas].map((s) => s.close()));
      await cluster.stop();
    },
  };
}

export async function startMemoryStore(): Promise<StoreUnderTest> {
  let now = Date.now();
  const store = new MemorySessionStore({ now: () => now, defaults: DEFAULTS });
  const present = async (tenantId: string, ref: SessionRef) => (await store.getMany(tenantId, [ref]))[0] !== null;
  return {
    store,
    withDefaults(changed) {
      // The embedded store keeps its sessions in itself, so another store on the same sessions is a view of it:
      // an object that inherits everything from the store but its own `defaults` (the field its writes read).
      const view = Object.create(store) as MemorySessionStore;
      Object.defineProperty(view, "defaults", { value: Object.freeze({ ...DEFAULTS, ...changed }) });
      return view;
    },
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
