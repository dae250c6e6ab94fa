import type { JsonObject, SessionRecord } from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import { freshTenant } from "../helpers/test-server";
import {
  contextOf,
  empties,
  json,
  LIMITS,
  numbers,
  oddKeys,
  STORES,
  text,
  tricky,
  type StoreUnderTest,
} from "./session-store.harness";

/**
 * The store-level contract ("Behaviour" in the contract): what store and merge write and return, exact round
 * trips and keys-as-data. Every rule runs against both SessionStore implementations.
 */

const ref = { userId: "user-1", sessionId: "session-1" };

function expectNoPollution(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted")).toBe(false);
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
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

  describe("Store replaces the whole context", () => {
    it("creates the session at version 1 with the fields given and empty ones for the rest", async () => {
      const tenant = freshTenant();

      const record = await store.store(tenant, ref, { conversationState: { step: 2 } }, LIMITS);

      expect(record).toMatchObject({
        tenantId: tenant,
        userId: ref.userId,
        sessionId: ref.sessionId,
        version: 1,
        ttlSeconds: LIMITS.defaultTtlSeconds,
      });
      expect(contextOf(record)).toEqual({
        conversationState: { step: 2 },
        interruptedQueries: [],
        recentInteractions: [],
        userPreferences: {},
      });
      expect(record.storedAt).toEqual(record.lastUpdated);
      expect(record.expiresAt.getTime()).toBe(record.lastUpdated.getTime() + LIMITS.defaultTtlSeconds * 1000);
      expect(await read(tenant)).toEqual(record);
    });

    it("replaces every field on the next store: omitted ones become empty", async () => {
      const tenant = freshTenant();
      await store.store(
        tenant,
        ref,
        {
          conversationState: { step: 1 },
          interruptedQueries: ["q1"],
          recentInteractions: [{ role: "user" }],
          userPreferences: { theme: "dark" },
        },
        LIMITS,
      );

      const record = await store.store(tenant, ref, { userPreferences: { language: "de" } }, LIMITS);

      expect(record.version).toBe(2);
      expect(contextOf(record)).toEqual({
        conversationState: {},
        interruptedQueries: [],
        recentInteractions: [],
        userPreferences: { language: "de" },
      });
      expect(await read(tenant)).toEqual(record);
    });

    it("keeps storedAt from the first write while lastUpdated and expiresAt move with every write", async () => {
      const tenant = freshTenant();
      const first = await store.store(tenant, ref, {}, LIMITS);
      await sut.passTime(5);
      const second = await store.merge(tenant, ref, { conversationState: { a: 1 } }, LIMITS);
      await sut.passTime(5);

      const third = await store.store(tenant, ref, { ttlSeconds: 60 }, LIMITS);

      expect([second.storedAt, third.storedAt]).toEqual([first.storedAt, first.storedAt]);
      expect(second.lastUpdated.getTime()).toBeGreaterThan(first.lastUpdated.getTime());
      expect(third.lastUpdated.getTime()).toBeGreaterThan(second.lastUpdated.getTime());
      for (const record of [first, second, third]) {
        expect(record.expiresAt.getTime()).toBe(record.lastUpdated.getTime() + record.ttlSeconds * 1000);
      }
      expect(third.ttlSeconds).toBe(60);
    });

    it("counts the version up by one on every write, store or merge", async () => {
      const tenant = freshTenant();
      const versions: number[] = [];

      for (const write of [store.store, store.merge, store.merge, store.store, store.merge]) {
        versions.push((await write.call(store, tenant, ref, { interruptedQueries: ["q"] }, LIMITS)).version);
      }

      expect(versions).toEqual([1, 2, 3, 4, 5]);
      expect((await read(tenant))?.version).toBe(5);
    });

    it("gives a session an id that stays the same across writes and differs from other sessions' ids", async () => {
      const tenant = freshTenant();
      const first = await store.store(tenant, ref, {}, LIMITS);

      const again = await store.merge(tenant, ref, {}, LIMITS);
      const other = await store.store(tenant, { ...ref, sessionId: "session-2" }, {}, LIMITS);
      const otherTenant = await store.store(freshTenant(), ref, {}, LIMITS);

      expect(again.id).toBe(first.id);
      expect(new Set([first.id, other.id, otherTenant.id]).size).toBe(3);
    });
  });

  describe("Merge shallow-merges the objects and appends the lists", () => {
    it("creates the session when it is absent", async () => {
      const tenant = freshTenant();

      const record = await store.merge(tenant, ref, { interruptedQueries: ["first"] }, LIMITS);

      expect(record.version).toBe(1);
      expect(contextOf(record)).toEqual({
        conversationState: {},
        interruptedQueries: ["first"],
        recentInteractions: [],
        userPreferences: {},
      });
      expect(record.storedAt).toEqual(record.lastUpdated);
      expect(await read(tenant)).toEqual(record);
    });

    it("overwrites top-level keys and replaces nested objects instead of deep-merging them", async () => {
      const tenant = freshTenant();
      await store.store(
        tenant,
        ref,
        {
          conversationState: { topic: "billing", draft: { subject: "hi", body: "..." }, keep: true },
          userPreferences: { theme: "dark", layout: { sidebar: "left", density: "compact" } },
        },
        LIMITS,
      );

      const record = await store.merge(
        tenant,
        ref,
        {
          conversationState: { topic: "refund", draft: { subject: "refund" }, cleared: null },
          userPreferences: { layout: { sidebar: "right" } },
        },
        LIMITS,
      );

      expect(record.conversationState).toEqual({
        topic: "refund",
        draft: { subject: "refund" },
        keep: true,
        cleared: null,
      });
      expect(record.userPreferences).toEqual({ theme: "dark", layout: { sidebar: "right" } });
      expect(await read(tenant)).toEqual(record);
    });

    it("appends interruptedQueries and recentInteractions in order after the existing entries", async () => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { interruptedQueries: ["a"], recentInteractions: [{ n: 1 }] }, LIMITS);

      await store.merge(tenant, ref, { interruptedQueries: ["b", "c"], recentInteractions: [{ n: 2 }] }, LIMITS);
      const record = await store.merge(
        tenant,
        ref,
        { interruptedQueries: ["d"], recentInteractions: [{ n: 3 }] },
        LIMITS,
      );

      expect(record.interruptedQueries).toEqual(["a", "b", "c", "d"]);
      expect(record.recentInteractions).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    });

    it("leaves omitted fields unchanged", async () => {
      const tenant = freshTenant();
      const before = await store.store(
        tenant,
        ref,
        {
          conversationState: { step: 1 },
          interruptedQueries: ["q"],
          recentInteractions: [{ role: "user" }],
          userPreferences: { theme: "dark" },
        },
        LIMITS,
      );

      const onlyPreferences = await store.merge(tenant, ref, { userPreferences: { language: "fr" } }, LIMITS);
      const nothing = await store.merge(tenant, ref, {}, LIMITS);

      expect(contextOf(onlyPreferences)).toEqual({
        ...contextOf(before),
        userPreferences: { theme: "dark", language: "fr" },
      });
      expect(nothing.version).toBe(3);
      expect(contextOf(nothing)).toEqual(contextOf(onlyPreferences));
    });

    // What we do (the contract leaves it open): like `{ ...old, ...patch }` in JavaScript.
    it("keeps existing keys in their place and puts new keys last", async () => {
      const tenant = freshTenant();
      await store.store(tenant, ref, { conversationState: { c: 1, a: 2, b: 3 } }, LIMITS);

      const record = await store.merge(tenant, ref, { conversationState: { z: 4, a: 5, y: 6 } }, LIMITS);

      expect(Object.entries(record.conversationState)).toEqual([
        ["c", 1],
        ["a", 5],
        ["b", 3],
        ["z", 4],
        ["y", 6],
      ]);
      expect(Object.keys((await read(tenant))!.conversationState)).toEqual(["c", "a", "b", "z", "y"]);
    });
  });

  describe("A write whose caller reads only the header (returnContext: false)", () => {
    it("returns the same header as a full answer and writes the whole context all the same", async () => {
      const tenant = freshTenant();
      const full = await store.store(
        tenant,
        ref,
        { conversationState: { step: 1 }, recentInteractions: [{ a: 1 }] },
        LIMITS,
      );

      const header = await store.merge(
        tenant,
        ref,
        { conversationState: { step: 2 }, recentInteractions: [{ b: 2 }], returnContext: false },
        LIMITS,
      );

      const stored = (await read(tenant))!;
      for (const field of [
        "id",
        "tenantId",
        "userId",
        "sessionId",
        "version",
        "storedAt",
        "lastUpdated",
        "ttlSeconds",
        "expiresAt",
      ] as const)
        expect(header[field]).toEqual(stored[field]);
      expect(header.version).toBe(full.version + 1);
      expect(contextOf(stored)).toEqual({
        conversationState: { step: 2 },
        interruptedQueries: [],
        recentInteractions: [{ a: 1 }, { b: 2 }],
        userPreferences: {},
      });
    });
  });

  describe("Exact round trip: any JSON value comes back equal, through store and through merge", () => {
    const everywhere = {
      conversationState: tricky,
      interruptedQueries: [text.emoji, text.rtl, text.controls, text.loneSurrogates, text.escapes] as string[],
      recentInteractions: [numbers, empties, text, oddKeys],
      userPreferences: { ...oddKeys, numbers },
    };

    it("store returns and reads back every value, key and key order unchanged", async () => {
      const tenant = freshTenant();

      const record = await store.store(tenant, ref, everywhere, LIMITS);

      for (const stored of [record, (await read(tenant))!]) {
        expect(contextOf(stored)).toEqual(everywhere);
        expect(JSON.stringify(contextOf(stored))).toBe(JSON.stringify(everywhere));
      }
    });

    it("merge onto an absent session returns and reads back every value unchanged", async () => {
      const tenant = freshTenant();

      const record = await store.merge(tenant, ref, everywhere, LIMITS);

      expect(contextOf(record)).toEqual(everywhere);
      expect(contextOf((await read(tenant))!)).toEqual(everywhere);
    });

    it("merge onto existing content keeps the old values and adds the new ones exactly", async () => {
      const tenant = freshTenant();
      await store.store(tenant, ref, everywhere, LIMITS);
      const patch = { empties: { again: {}, list: [] }, numbers: { sum: 0.1 + 0.2, neg: -9007199254740991 }, oddKeys };

      const record = await store.merge(
        tenant,
        ref,
        {
          conversationState: patch,
          interruptedQueries: everywhere.interruptedQueries,
          recentInteractions: [empties, numbers],
          userPreferences: { numbers, "": {} },
        },
        LIMITS,
      );

      const expected = {
        conversationState: { ...tricky, ...patch },
        interruptedQueries: [...everywhere.interruptedQueries, ...everywhere.interruptedQueries],
        recentInteractions: [...everywhere.recentInteractions, empties, numbers],
        userPreferences: { ...everywhere.userPreferences, numbers, "": {} },
      };
      expect(contextOf(record)).toEqual(expected);
      expect(contextOf((await read(tenant))!)).toEqual(expected);
    });

    it("keeps empty objects and arrays as whole field values and as merge patches", async () => {
      const tenant = freshTenant();
      const emptyish = { conversationState: {}, interruptedQueries: [], recentInteractions: [{}], userPreferences: {} };
      await store.store(tenant, ref, emptyish, LIMITS);

      const record = await store.merge(
        tenant,
        ref,
        { conversationState: {}, interruptedQueries: [], recentInteractions: [], userPreferences: {} },
        LIMITS,
      );

      expect(record.version).toBe(2);
      expect(contextOf(record)).toEqual(emptyish);
      expect(contextOf((await read(tenant))!)).toEqual(emptyish);
    });

    it("returns -0 as 0, since JSON has no negative zero", async () => {
      const tenant = freshTenant();

      const stored = await store.store(tenant, ref, { conversationState: { zero: -0, list: [-0] } }, LIMITS);
      const merged = await store.merge(tenant, ref, { userPreferences: { zero: -0 } }, LIMITS);

      expect(Object.is(stored.conversationState.zero, 0)).toBe(true);
      expect(Object.is((stored.conversationState.list as number[])[0], 0)).toBe(true);
      expect(Object.is(merged.userPreferences.zero, 0)).toBe(true);
    });
  });

  describe("Keys are data: __proto__, constructor and prototype are ordinary keys", () => {
    const dangerous = () =>
      json<JsonObject>(
        '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":1}}',
      );
    const expectOrdinaryKeys = (object: JsonObject, expected: JsonObject) => {
      for (const key of ["__proto__", "constructor", "prototype"]) expect(Object.hasOwn(object, key)).toBe(true);
      expect(Object.getPrototypeOf(object)).toBe(Object.prototype);
      expect(JSON.stringify(object)).toBe(JSON.stringify(expected));
    };
    afterEach(expectNoPollution);

    it("stores and returns them as own keys of the objects and of list entries", async () => {
      const tenant = freshTenant();

      const record = await store.store(
        tenant,
        ref,
        { conversationState: dangerous(), recentInteractions: [dangerous()], userPreferences: dangerous() },
        LIMITS,
      );

      for (const stored of [record, (await read(tenant))!]) {
        expectOrdinaryKeys(stored.conversationState, dangerous());
        expectOrdinaryKeys(stored.recentInteractions[0], dangerous());
        expectOrdinaryKeys(stored.userPreferences, dangerous());
      }
    });

    it("merges them as ordinary top-level keys, onto absent and existing sessions", async () => {
      const tenant = freshTenant();
      const created = await store.merge(tenant, ref, { conversationState: dangerous() }, LIMITS);
      const patch = json<JsonObject>('{"__proto__":{"replaced":true},"toString":"text","hasOwnProperty":1}');

      const record = await store.merge(tenant, ref, { conversationState: patch, userPreferences: dangerous() }, LIMITS);

      expectOrdinaryKeys(created.conversationState, dangerous());
      const expected = json<JsonObject>(
        '{"__proto__":{"replaced":true},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":1},' +
          '"toString":"text","hasOwnProperty":1}',
      );
      for (const stored of [record, (await read(tenant))!]) {
        expectOrdinaryKeys(stored.conversationState, expected);
        expectOrdinaryKeys(stored.userPreferences, dangerous());
      }
    });
  });
});
