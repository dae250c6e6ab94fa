import { ConflictError, ContextTooLargeError, TooManyKeysError } from "../../src/errors/errors";
import { MAX_OBJECT_KEYS } from "../../src/sessions/json-limits";
import type { ContextFields, SessionRecord, SessionWrite, WriteLimits } from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import { sessionKey } from "../../src/store/keys";
import { contextBytes } from "../../src/store/session-document";
import { freshTenant } from "../helpers/test-server";
import {
  contextOf,
  LIMITS,
  startRedisStore,
  STORES,
  type RedisStoreUnderTest,
  type StoreUnderTest,
} from "./session-store.harness";

/**
 * The store-level contract for what bounds a write: TTL, list caps, MAX_CONTEXT_BYTES and expectedVersion.
 * Every rule runs against both SessionStore implementations; the last describe checks Redis's raw value.
 */

const ref = { userId: "user-1", sessionId: "session-1" };
const writes = ["store", "merge"] as const;

const empty: ContextFields = {
  conversationState: {},
  interruptedQueries: [],
  recentInteractions: [],
  userPreferences: {},
};

/** `fields` with `conversationState.pad` grown (ASCII) until the context is exactly `bytes` UTF-8 bytes. */
function sizedTo(bytes: number, fields: Partial<ContextFields> = {}): ContextFields {
  const base = { ...empty, ...fields, conversationState: { ...fields.conversationState, pad: "" } };
  const pad = "x".repeat(bytes - contextBytes(base));
  const sized = { ...base, conversationState: { ...base.conversationState, pad } };
  expect(contextBytes(sized)).toBe(bytes);
  return sized;
}

describe.each(STORES)("%s", (_name, start) => {
  let sut: StoreUnderTest;
  let store: SessionStore;
  beforeAll(async () => {
    sut = await start();
    store = sut.store;
  });
  afterAll(() => sut.close());

  const read = async (tenantId: string): Promise<SessionRecord | null> => (await store.getMany(tenantId, [ref]))[0];
  const write = (mode: (typeof writes)[number], tenantId: string, w: SessionWrite, limits: WriteLimits = LIMITS) =>
    store[mode](tenantId, ref, w, limits);

  describe("TTL: every write sets the expiry to ttlSeconds, else the session's own TTL, else the default", () => {
    it.each(writes)("%s of a new session without ttlSeconds takes the default TTL", async (mode) => {
      const tenant = freshTenant();

      const record = await sut.withDefaults({ defaultTtlSeconds: 3600 })[mode](tenant, ref, {}, LIMITS);

      expect(record.ttlSeconds).toBe(3600);
      expect(record.expiresAt.getTime()).toBe(record.lastUpdated.getTime() + 3600_000);
      await sut.expectKeyExpiresAt(tenant, ref, record.expiresAt);
    });

    it.each(writes)("%s with ttlSeconds sets that TTL, even one shorter than the session's own", async (mode) => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { ttlSeconds: 600 }, LIMITS);

      const record = await write(mode, tenant, { ttlSeconds: 120 });

      expect(record.ttlSeconds).toBe(120);
      expect(record.expiresAt.getTime()).toBe(record.lastUpdated.getTime() + 120_000);
      await sut.expectKeyExpiresAt(tenant, ref, record.expiresAt);
    });

    it.each(writes)("%s without ttlSeconds keeps the session's own TTL, counted from this write", async (mode) => {
      const tenant = freshTenant();
      const first = await store.store(tenant, ref, { ttlSeconds: 600 }, LIMITS);
      await sut.passTime(20);

      const record = await sut.withDefaults({ defaultTtlSeconds: 30 })[mode](tenant, ref, {}, LIMITS);

      expect(record.ttlSeconds).toBe(600);
      expect(record.expiresAt.getTime()).toBe(record.lastUpdated.getTime() + 600_000);
      expect(record.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
      await sut.expectKeyExpiresAt(tenant, ref, record.expiresAt);
    });

    it("lets a session expire when its TTL runs out; the next write starts a new session", async () => {
      const tenant = freshTenant();
      const record = await store.store(tenant, ref, { conversationState: { a: 1 }, ttlSeconds: 1 }, LIMITS);
      expect(await read(tenant)).not.toBeNull();

      await sut.waitForExpiry(tenant, ref, record);

      expect(await read(tenant)).toBeNull();
      const next = await store.merge(tenant, ref, { userPreferences: { b: 2 } }, LIMITS);
      expect(next).toMatchObject({ version: 1, ttlSeconds: LIMITS.defaultTtlSeconds });
      expect(contextOf(next)).toEqual({ ...empty, userPreferences: { b: 2 } });
      expect(next.storedAt.getTime()).toBeGreaterThanOrEqual(record.expiresAt.getTime());
    });
  });

  describe("List caps: merge and store keep only the newest entries", () => {
    let capped: SessionStore;
    beforeAll(() => {
      capped = sut.withDefaults({ maxInterruptedQueries: 3, maxRecentInteractions: 2 });
    });
    const queries = (...n: number[]) => n.map((i) => `q${i}`);
    const interactions = (...n: number[]) => n.map((i) => ({ n: i }));

    it("store keeps the newest maxInterruptedQueries and maxRecentInteractions", async () => {
      const tenant = freshTenant();

      const record = await capped.store(
        tenant,
        ref,
        { interruptedQueries: queries(1, 2, 3, 4, 5), recentInteractions: interactions(1, 2, 3, 4, 5) },
        LIMITS,
      );

      expect(record.interruptedQueries).toEqual(queries(3, 4, 5));
      expect(record.recentInteractions).toEqual(interactions(4, 5));
      expect(await read(tenant)).toEqual(record);
    });

    it("merge appending past the cap drops the oldest entries", async () => {
      const tenant = freshTenant();
      await capped.store(
        tenant,
        ref,
        { interruptedQueries: queries(1, 2), recentInteractions: interactions(1) },
        LIMITS,
      );

      const record = await capped.merge(
        tenant,
        ref,
        { interruptedQueries: queries(3, 4), recentInteractions: interactions(2, 3) },
        LIMITS,
      );

      expect(record.interruptedQueries).toEqual(queries(2, 3, 4));
      expect(record.recentInteractions).toEqual(interactions(2, 3));
      expect(await read(tenant)).toEqual(record);
    });

    it("one merge adding more than the cap keeps the newest of the added entries only", async () => {
      const tenant = freshTenant();
      await capped.store(tenant, ref, { interruptedQueries: queries(1), recentInteractions: interactions(1) }, LIMITS);

      const record = await capped.merge(
        tenant,
        ref,
        { interruptedQueries: queries(2, 3, 4, 5), recentInteractions: interactions(2, 3, 4) },
        LIMITS,
      );

      expect(record.interruptedQueries).toEqual(queries(3, 4, 5));
      expect(record.recentInteractions).toEqual(interactions(3, 4));
    });

    it("a cap lowered since the last write applies when a merge appends", async () => {
      const tenant = freshTenant();
      await store.store(
        tenant,
        ref,
        { interruptedQueries: queries(1, 2, 3, 4, 5), recentInteractions: interactions(1, 2, 3, 4, 5) },
        LIMITS,
      );

      const record = await capped.merge(
        tenant,
        ref,
        { interruptedQueries: queries(6), recentInteractions: interactions(6) },
        LIMITS,
      );

      expect(record.interruptedQueries).toEqual(queries(4, 5, 6));
      expect(record.recentInteractions).toEqual(interactions(5, 6));
    });
  });

  describe("MAX_CONTEXT_BYTES: a context over the limit after the write is refused and nothing is written", () => {
    const small: WriteLimits = { ...LIMITS, maxContextBytes: 1024 };

    it.each(writes)("%s of a context exactly at the limit succeeds", async (mode) => {
      const tenant = freshTenant();
      const fields = sizedTo(1024, { userPreferences: { é: "€😀" }, interruptedQueries: ["ünïcödé"] });

      const record = await write(mode, tenant, fields, small);

      expect(record.version).toBe(1);
      expect(contextOf(record)).toEqual(fields);
    });

    it.each(writes)(
      "%s one byte over throws ContextTooLargeError (BAD_USER_INPUT) and creates nothing",
      async (mode) => {
        const tenant = freshTenant();
        const fields = sizedTo(1025, { recentInteractions: [{ text: "مرحبا" }] });

        const attempt = write(mode, tenant, fields, small);

        await expect(attempt).rejects.toBeInstanceOf(ContextTooLargeError);
        await expect(attempt).rejects.toMatchObject({ extensions: { code: "BAD_USER_INPUT" } });
        expect(await read(tenant)).toBeNull();
      },
    );

    it.each(writes)("%s counts UTF-8 bytes, not characters, and leaves the session as it was", async (mode) => {
      const tenant = freshTenant();
      const before = await store.store(tenant, ref, { conversationState: { keep: 1 } }, small);
      const emoji = "😀".repeat(200); // 400 UTF-16 units, 800 UTF-8 bytes
      expect(contextBytes({ ...empty, interruptedQueries: [emoji] })).toBeLessThan(1024);

      const attempt = write(mode, tenant, { interruptedQueries: [emoji, emoji] }, small);

      await expect(attempt).rejects.toBeInstanceOf(ContextTooLargeError);
      expect(await read(tenant)).toEqual(before);
    });

    it("limits the merged result, not the patch: a small merge onto a large context is refused", async () => {
      const tenant = freshTenant();
      const existing = sizedTo(1000, { recentInteractions: [{ said: "ça va? 你好" }] });
      const before = await store.store(tenant, ref, existing, small);

      const attempt = store.merge(tenant, ref, { userPreferences: { language: "français-ü" } }, small);

      await expect(attempt).rejects.toBeInstanceOf(ContextTooLargeError);
      expect(await read(tenant)).toEqual(before);
    });

    it("a merge that brings the context exactly to the limit succeeds", async () => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { interruptedQueries: ["€"] }, small);
      const result = sizedTo(1024, { interruptedQueries: ["€", "😀"], userPreferences: { ключ: "значение" } });

      const record = await store.merge(
        tenant,
        ref,
        {
          conversationState: result.conversationState,
          interruptedQueries: ["😀"],
          userPreferences: { ключ: "значение" },
        },
        small,
      );

      expect(record.version).toBe(2);
      expect(contextOf(record)).toEqual(result);
      expect(contextBytes(record)).toBe(1024);
    });
  });

  describe("MAX_OBJECT_KEYS: a merge that would leave an object field over the key limit is refused, nothing written", () => {
    const keys = (n: number, prefix: string) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, i]));

    it.each(["conversationState", "userPreferences"] as const)("%s", async (field) => {
      const tenant = freshTenant();
      const before = await store.store(tenant, ref, { [field]: keys(MAX_OBJECT_KEYS - 1, "a") }, LIMITS);

      // One more key is the limit exactly; replacing keys that are there adds none.
      const atLimit = await store.merge(tenant, ref, { [field]: { ...keys(10, "a"), last: true } }, LIMITS);
      expect(Object.keys(atLimit[field])).toHaveLength(MAX_OBJECT_KEYS);
      const attempt = store.merge(tenant, ref, { [field]: { over: true } }, LIMITS);

      await expect(attempt).rejects.toBeInstanceOf(TooManyKeysError);
      await expect(attempt).rejects.toMatchObject({ field: `input.${field}`, keys: MAX_OBJECT_KEYS + 1 });
      expect((await read(tenant))?.version).toBe(before.version + 1);
      // A store replaces the field whole: that is how it shrinks.
      const stored = await store.store(tenant, ref, { [field]: { small: true } }, LIMITS);
      expect(stored[field]).toEqual({ small: true });
    });
  });

  describe("expectedVersion: a write happens only when the stored version matches (absent = 0)", () => {
    it.each(writes)(
      "%s with a stale expectedVersion throws ConflictError (CONFLICT) and writes nothing",
      async (mode) => {
        const tenant = freshTenant();
        await store.store(tenant, ref, { conversationState: { v: 1 } }, LIMITS);
        const before = await store.merge(tenant, ref, { conversationState: { v: 2 } }, LIMITS);

        const attempt = write(mode, tenant, { conversationState: { v: 3 }, expectedVersion: 1 });

        await expect(attempt).rejects.toBeInstanceOf(ConflictError);
        await expect(attempt).rejects.toMatchObject({ extensions: { code: "CONFLICT", actualVersion: 2 } });
        expect(await read(tenant)).toEqual(before);
      },
    );

    it.each(writes)("%s with the stored version as expectedVersion writes the next version", async (mode) => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { conversationState: { v: 1 } }, LIMITS);

      const record = await write(mode, tenant, { conversationState: { v: 2 }, expectedVersion: 1 });

      expect(record.version).toBe(2);
      expect(record.conversationState).toEqual({ v: 2 });
      expect(await read(tenant)).toEqual(record);
    });

    it.each(writes)("%s counts an absent session as version 0", async (mode) => {
      const tenant = freshTenant();

      const refused = write(mode, tenant, { conversationState: { v: 1 }, expectedVersion: 1 });
      await expect(refused).rejects.toMatchObject({ extensions: { code: "CONFLICT", actualVersion: 0 } });
      expect(await read(tenant)).toBeNull();
      const created = await write(mode, tenant, { conversationState: { v: 1 }, expectedVersion: 0 });

      expect(created.version).toBe(1);
      expect(created.conversationState).toEqual({ v: 1 });
    });
  });
});

describe("RedisSessionStore: a refused write leaves the stored value and its expiry untouched", () => {
  let sut: RedisStoreUnderTest;
  beforeAll(async () => {
    sut = await startRedisStore();
  });
  afterAll(() => sut.close());

  it("keeps the raw value byte for byte and does not reset the TTL on a conflict or an oversize write", async () => {
    const tenant = freshTenant();
    const key = sessionKey(tenant, ref.userId, ref.sessionId);
    const small = { ...LIMITS, maxContextBytes: 1024 };
    await sut.store.store(tenant, ref, { conversationState: { a: "€" }, ttlSeconds: 600 }, small);
    const rawBefore = await sut.redis.admin.get(key);
    const pttlBefore = await sut.redis.admin.pttl(key);

    const refusals = await Promise.allSettled([
      sut.store.merge(tenant, ref, { ttlSeconds: 3600, expectedVersion: 7 }, small),
      sut.store.store(tenant, ref, { ...sizedTo(1025), ttlSeconds: 3600 }, small),
      sut.store.merge(tenant, ref, { interruptedQueries: ["x".repeat(1024)], ttlSeconds: 3600 }, small),
    ]);

    expect(refusals.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(await sut.redis.admin.get(key)).toBe(rawBefore);
    expect(await sut.redis.admin.pttl(key)).toBeLessThanOrEqual(pttlBefore);
  });
});
