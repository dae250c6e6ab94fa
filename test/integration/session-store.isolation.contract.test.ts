import type { ContextFields, SessionRef } from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import { sessionKey, tenantPrefix } from "../../src/store/keys";
import type { RedisProcess } from "../helpers/redis-server";
import { freshTenant } from "../helpers/test-server";
import {
  contextOf,
  empties,
  LIMITS,
  oddKeys,
  startRedisStore,
  STORES,
  type RedisStoreUnderTest,
  text,
  tricky,
  type StoreUnderTest,
} from "./session-store.harness";

/**
 * The store-level contract for many writers and many ids: atomic merges, isolation by construction, and batched
 * reads. Every rule runs against both SessionStore implementations; the Redis layout and MGET count are Redis-only.
 */

const ref = { userId: "user-1", sessionId: "session-1" };
/** Tenant defaults with room for every entry of the concurrent batches below. */
const ROOMY = { maxInterruptedQueries: 1000, maxRecentInteractions: 1000 };

/** Merge number `i` of a concurrent batch: one list entry and one conversationState key only it writes. */
const mergeNumber = (i: number) => ({
  conversationState: { [`writer-${i}`]: i },
  interruptedQueries: [`query-${i}`],
  recentInteractions: [{ writer: i }],
});

/** Triples that collide when ids are joined naively, or that match each other as SCAN/glob patterns. */
function lookalikes(base: string): [tenant: string, user: string, session: string][] {
  return [
    [`${base}:b`, "c", "s"],
    [base, "b:c", "s"],
    [base, "u:session:s", "t"],
    [base, "u", "s:session:t"],
    [`${base}}:user:{x`, "u", "s"],
    [base, "u", "x*"],
    [base, "u", "x?"],
    [base, "u", "xa"],
    [base, "u", "x[ab]"],
    [base, "u", "x\\*"],
    [base, "u", "x%2A"],
    [base, "u", "x%"],
    [base, "u", "x%25"],
    [base, "u", "{x}"],
    [`${base}*`, "u", "s"],
    [`${base}?`, "u", "s"],
    [`${base}\\`, "u", "s"],
    [`${base}[0-9]`, "u", "s"],
    [`${base}-日本`, "ユーザー", "🚀"],
    [`${base}-עברית`, "u\u0080\u00a0", "s\u200b"],
  ];
}

/** Session keys, as opposed to the tenant's index and settings keys beside them. */
const isSessionKey = (key: string) => key.includes(":session:");

async function scanKeys(redis: RedisProcess, match: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.admin.scan(cursor, "MATCH", match, "COUNT", 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== "0");
  return found.sort();
}

describe.each(STORES)("%s", (_name, start) => {
  let sut: StoreUnderTest;
  let store: SessionStore;
  beforeAll(async () => {
    sut = await start();
    store = sut.store;
  });
  afterAll(() => sut.close());

  describe("Atomic merges: N concurrent merges to one session all land", () => {
    it("300 concurrent merges each get their own version and none of their entries or keys is lost", async () => {
      const tenant = freshTenant();
      const count = 300;
      const roomy = sut.withDefaults(ROOMY);

      const records = await Promise.all(
        Array.from({ length: count }, (_, i) => roomy.merge(tenant, ref, mergeNumber(i), LIMITS)),
      );

      const final = (await store.getMany(tenant, [ref]))[0]!;
      expect(final.version).toBe(count);
      expect(records.map((r) => r.version).sort((a, b) => a - b)).toEqual(
        Array.from({ length: count }, (_, i) => i + 1),
      );
      expect([...final.interruptedQueries].sort()).toEqual(
        Array.from({ length: count }, (_, i) => `query-${i}`).sort(),
      );
      expect(final.recentInteractions).toHaveLength(count);
      expect(Object.keys(final.conversationState)).toHaveLength(count);
      // The merge that answered version v appended the v-th entry: each one saw exactly the writes before it.
      for (const record of records) {
        const i = Number(record.interruptedQueries[record.version - 1].slice("query-".length));
        expect(record.recentInteractions[record.version - 1]).toEqual({ writer: i });
        expect(final.conversationState[`writer-${i}`]).toBe(i);
      }
    });
  });

  describe("Isolation by construction: different (tenant, user, session) never share a session", () => {
    it("keeps ids with : { } * ? [ ] \\ % and unicode apart, in writes and in batched reads", async () => {
      const triples = lookalikes(freshTenant());

      await Promise.all(
        triples.map(([tenant, userId, sessionId], i) =>
          store.store(tenant, { userId, sessionId }, { conversationState: { owner: i } }, LIMITS),
        ),
      );
      const reads = await Promise.all(
        triples.map(([tenant, userId, sessionId]) => store.getMany(tenant, [{ userId, sessionId }])),
      );

      expect(reads.map(([record]) => record?.conversationState.owner)).toEqual(triples.map((_, i) => i));
      expect(reads.map(([record]) => [record?.tenantId, record?.userId, record?.sessionId])).toEqual(triples);
      expect(reads.map(([record]) => record?.version)).toEqual(triples.map(() => 1));
      expect(new Set(reads.map(([record]) => record?.id)).size).toBe(triples.length);
    });

    it("finds nothing of one tenant under another tenant, user or session", async () => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { conversationState: { secret: true } }, LIMITS);

      const elsewhere = await Promise.all([
        store.getMany(`${tenant}*`, [ref]),
        store.getMany(tenant.slice(0, -1), [ref]),
        store.getMany(tenant, [{ ...ref, userId: "user-*" }]),
        store.getMany(tenant, [{ ...ref, sessionId: "session-?" }]),
      ]);

      expect(elsewhere).toEqual([[null], [null], [null], [null]]);
    });
  });

  describe("Batched reads: getMany answers every ref, in order", () => {
    it("returns result[i] for refs[i], null for a missing session, and [] for no refs", async () => {
      const tenant = freshTenant();
      const refs: SessionRef[] = ["a", "b", "c"].map((sessionId) => ({ userId: "u", sessionId }));
      await store.store(tenant, refs[2], { conversationState: { n: 2 } }, LIMITS);
      await store.store(tenant, refs[0], { conversationState: { n: 0 } }, LIMITS);

      const records = await store.getMany(tenant, [...refs, refs[0]]);

      expect(records.map((r) => r?.conversationState.n ?? null)).toEqual([0, null, 2, 0]);
      expect(records.map((r) => r?.sessionId ?? null)).toEqual(["a", null, "c", "a"]);
      expect(await store.getMany(tenant, [])).toEqual([]);
    });
  });
});

describe("RedisSessionStore in Redis", () => {
  let sut: RedisStoreUnderTest;
  beforeAll(async () => {
    sut = await startRedisStore();
  });
  afterAll(() => sut.close());

  describe("Atomic merges across replicas", () => {
    it("300 merges from five independent clients at once all land and the version is their count", async () => {
      const tenant = freshTenant();
      const stores = [sut.withDefaults(ROOMY), ...(await Promise.all([1, 2, 3, 4].map(() => sut.replica(ROOMY))))];

      await Promise.all(
        Array.from({ length: 300 }, (_, i) => stores[i % stores.length].merge(tenant, ref, mergeNumber(i), LIMITS)),
      );

      const final = (await sut.store.getMany(tenant, [ref]))[0]!;
      expect(final.version).toBe(300);
      expect(new Set(final.interruptedQueries).size).toBe(300);
      expect(new Set(final.recentInteractions.map((r) => r.writer)).size).toBe(300);
      expect(Object.keys(final.conversationState)).toHaveLength(300);
    });
  });

  describe("Redis layout: the context is JSON under the session key", () => {
    it("holds exactly the four context fields that were written, after a store and after a merge", async () => {
      const tenant = freshTenant();
      const key = sessionKey(tenant, ref.userId, ref.sessionId);
      const fields = {
        conversationState: tricky,
        interruptedQueries: [text.controls as string],
        recentInteractions: [empties],
        userPreferences: oddKeys,
      };
      await sut.store.store(tenant, ref, fields, LIMITS);
      const afterStore = JSON.parse((await sut.redis.admin.get(key))!) as ContextFields;

      await sut.store.merge(tenant, ref, { interruptedQueries: ["more"], userPreferences: { added: {} } }, LIMITS);
      const afterMerge = JSON.parse((await sut.redis.admin.get(key))!) as ContextFields;

      expect(contextOf(afterStore)).toEqual(fields);
      expect(contextOf(afterMerge)).toEqual({
        ...fields,
        interruptedQueries: [...fields.interruptedQueries, "more"],
        userPreferences: { ...oddKeys, added: {} },
      });
    });
  });

  describe("Redis layout: tenant:{<tenant>}:user:<user>:session:<session>", () => {
    it("writes ids of letters, digits, - _ . and @ verbatim", async () => {
      const tenant = freshTenant("Acme_Corp.eu");
      const verbatim = { userId: "jane.doe@example.com", sessionId: "chat_2024-01-01.A9" };

      await sut.store.store(tenant, verbatim, {}, LIMITS);

      expect(await scanKeys(sut.redis, `tenant:{${tenant}}:user:*:session:*`)).toEqual([
        `tenant:{${tenant}}:user:jane.doe@example.com:session:chat_2024-01-01.A9`,
      ]);
    });

    it("escapes special characters so each key keeps the layout and SCAN of a tenant's prefix finds only its keys", async () => {
      const base = freshTenant();
      const triples = lookalikes(base);
      const tenants = [...new Set(triples.map(([tenant]) => tenant))];
      const separator = /[:{}*?[\]\\]/;

      await Promise.all(
        triples.map(([tenant, userId, sessionId]) => sut.store.store(tenant, { userId, sessionId }, {}, LIMITS)),
      );

      const all = (await scanKeys(sut.redis, `tenant:{${base}*`)).filter(isSessionKey);
      expect(all).toEqual(triples.map(([t, u, s]) => sessionKey(t, u, s)).sort());
      for (const key of all) {
        const [, tenant, user, session] = /^tenant:\{(.*)\}:user:(.*):session:(.*)$/.exec(key)!;
        for (const id of [tenant, user, session]) expect(id).not.toMatch(separator);
      }
      for (const tenant of tenants) {
        const own = triples.filter(([t]) => t === tenant).map(([t, u, s]) => sessionKey(t, u, s));
        const found = await scanKeys(sut.redis, `${tenantPrefix(tenant)}*`);
        expect(found.filter(isSessionKey)).toEqual(own.sort());
        for (const key of found) expect(key.startsWith(tenantPrefix(tenant))).toBe(true); // indexes too
      }
    });
  });

  describe("Batched reads: one round trip", () => {
    it("reads 40 sessions, stored and missing, with a single MGET and nothing else", async () => {
      const tenant = freshTenant();
      const refs = Array.from({ length: 40 }, (_, i) => ({ userId: `user-${i % 4}`, sessionId: `s-${i}` }));
      await Promise.all(
        refs.slice(0, 30).map((r, i) => sut.store.store(tenant, r, { conversationState: { i } }, LIMITS)),
      );
      const before = await sut.redis.commandCalls();

      const records = await sut.store.getMany(tenant, refs);

      const after = await sut.redis.commandCalls();
      const delta = Object.fromEntries(
        Object.entries(after)
          .map(([command, calls]) => [command, calls - (before[command] ?? 0)])
          .filter(([, calls]) => calls !== 0),
      );
      // INFO is the measurement itself (the second commandCalls()).
      expect(delta).toEqual({ mget: 1, info: 1 });
      expect(records.map((r) => r?.conversationState.i ?? null)).toEqual(refs.map((_, i) => (i < 30 ? i : null)));
    });
  });
});
