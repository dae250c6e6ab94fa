import type { SessionStore } from "../../src/sessions/session-store";
import { freshTenant } from "../helpers/test-server";
import type { JsonObject } from "../../src/sessions/session-record";
import { json, LIMITS, oddKeys, STORES, tricky, type StoreUnderTest } from "./session-store.harness";

/**
 * The store-level contract of the change log, on every store (embedded, Redis, Redis Cluster, Redis as the
 * least-privilege user): each write's entry is part of the same atomic step, and every kept version's context is
 * given back exactly, whatever happened since.
 */

const ref = { userId: "user-1", sessionId: "session-1" };
const actor = { userId: "writer", roles: ["service"] };

describe.each(STORES)("%s", (_name, start) => {
  let sut: StoreUnderTest;
  let store: SessionStore;
  beforeAll(async () => {
    sut = await start();
    store = sut.store;
  });
  afterAll(() => sut.close());

  it("logs each write with its actor and gives every kept version's context back exactly", async () => {
    const tenant = freshTenant();
    await store.store(tenant, ref, { conversationState: tricky, recentInteractions: [tricky], actor }, LIMITS);
    await store.merge(tenant, ref, { conversationState: { numbers: 1, added: [] }, userPreferences: tricky }, LIMITS);
    await store.merge(tenant, ref, { interruptedQueries: ["q"], recentInteractions: [{}], actor }, LIMITS);

    const { versions, hasNextPage } = await store.history(tenant, ref, 10);

    expect(hasNextPage).toBe(false);
    expect(versions.map((v) => [v.version, v.operation, v.actorUserId, v.actorRoles])).toEqual([
      [3, "MERGE", "writer", ["service"]],
      [2, "MERGE", "system", []], // no actor given: the service's own tools
      [1, "STORE", "writer", ["service"]],
    ]);
    expect(versions[2].context).toEqual({
      conversationState: tricky,
      interruptedQueries: [],
      recentInteractions: [tricky],
      userPreferences: {},
      ttlSeconds: LIMITS.defaultTtlSeconds,
    });
    expect(versions[1].context).toMatchObject({
      conversationState: { ...tricky, numbers: 1, added: [] },
      userPreferences: tricky,
    });
    expect(versions[0].change).toEqual({ interruptedQueries: ["q"], recentInteractions: [{}] });
    expect(versions[0].context).toMatchObject({ interruptedQueries: ["q"], recentInteractions: [tricky, {}] });
  });

  it("gives a store's change as it was given: the context it left, or more when a cap dropped entries", async () => {
    const tenant = freshTenant();
    const capped = sut.withDefaults({ maxRecentInteractions: 2 });
    const given = { conversationState: tricky, recentInteractions: [{ n: 1 }, { n: 2 }, { n: 3 }], actor };
    await capped.store(tenant, ref, given, LIMITS);
    await store.store(tenant, ref, { userPreferences: oddKeys, interruptedQueries: ["q"] }, LIMITS);

    const { versions } = await store.history(tenant, ref, 10);

    expect(versions[1].context.recentInteractions).toEqual([{ n: 2 }, { n: 3 }]);
    expect(versions[1].change).toEqual({
      conversationState: tricky,
      interruptedQueries: [],
      recentInteractions: [{ n: 1 }, { n: 2 }, { n: 3 }],
      userPreferences: {},
    });
    expect(versions[0].change).toEqual({
      conversationState: {},
      interruptedQueries: ["q"],
      recentInteractions: [],
      userPreferences: oddKeys,
    });
  });

  it("gives every version back, key order included, after merges replacing keys in any order and adding some", async () => {
    const tenant = freshTenant();
    const text = (object: JsonObject) => JSON.stringify(object);
    const state = json<JsonObject>('{"a":1,"__proto__":{"p":1},"b":[2],"c":{"}":"]"},"d":4}');
    await store.store(tenant, ref, { conversationState: state, userPreferences: { x: 1, y: 2 } }, LIMITS);
    const patches: (JsonObject | undefined)[][] = [
      // some keys, out of order, one new; every key of the other object, reversed
      [json('{"d":40,"__proto__":{"p":2},"e":5,"a":10}'), { y: 20, x: 10 }],
      // every key, in the reverse of the stored order
      [json('{"e":50,"d":41,"c":30,"b":21,"__proto__":0,"a":11}'), undefined],
      // every key in the stored order and one more, in the second object only
      [undefined, { x: 11, y: 21, z: 3 }],
      // every key in the stored order: the patch is the new object
      [json('{"a":12,"__proto__":{"p":3},"b":22,"c":31,"d":42,"e":51}'), {}],
    ];
    for (const [conversationState, userPreferences] of patches) {
      await store.merge(tenant, ref, { conversationState, userPreferences }, LIMITS);
    }

    const { versions } = await store.history(tenant, ref, 10);

    const expected = [
      ['{"a":12,"__proto__":{"p":3},"b":22,"c":31,"d":42,"e":51}', '{"x":11,"y":21,"z":3}'],
      ['{"a":11,"__proto__":0,"b":21,"c":30,"d":41,"e":50}', '{"x":11,"y":21,"z":3}'],
      ['{"a":11,"__proto__":0,"b":21,"c":30,"d":41,"e":50}', '{"x":10,"y":20}'],
      ['{"a":10,"__proto__":{"p":2},"b":[2],"c":{"}":"]"},"d":40,"e":5}', '{"x":10,"y":20}'],
      ['{"a":1,"__proto__":{"p":1},"b":[2],"c":{"}":"]"},"d":4}', '{"x":1,"y":2}'],
    ];
    expect(versions.map((v) => [text(v.context.conversationState), text(v.context.userPreferences)])).toEqual(expected);
    expect(versions.slice(0, 4).map((v) => v.change)).toEqual(
      patches.map(([conversationState, userPreferences]) => ({ conversationState, userPreferences })).reverse(),
    );
  });

  it("restores as a new write and leaves a conflicting or unknown restore unwritten", async () => {
    const tenant = freshTenant();
    await store.merge(tenant, ref, { conversationState: { step: 1 } }, LIMITS);
    await store.merge(tenant, ref, { conversationState: { step: 2 } }, LIMITS);

    const restored = await store.restore(tenant, ref, { version: 1, actor }, LIMITS);
    const conflict = store.restore(tenant, ref, { version: 1, actor, expectedVersion: 1 }, LIMITS);
    const unknown = store.restore(tenant, ref, { version: 7, actor }, LIMITS);

    expect(restored).toMatchObject({ version: 3, conversationState: { step: 1 } });
    await expect(conflict).rejects.toMatchObject({ extensions: { code: "CONFLICT" } });
    await expect(unknown).rejects.toMatchObject({ extensions: { code: "BAD_USER_INPUT", field: "version" } });
    const { versions } = await store.history(tenant, ref, 10);
    expect(versions.map((v) => [v.version, v.operation, v.change])).toEqual([
      [3, "RESTORE", { restoredVersion: 1 }],
      [2, "MERGE", { conversationState: { step: 2 } }],
      [1, "MERGE", { conversationState: { step: 1 } }],
    ]);
  });

  it("starts a new log for a session deleted and written again, and has none for an absent session", async () => {
    const tenant = freshTenant();
    await store.merge(tenant, ref, { conversationState: { old: true } }, LIMITS);
    await store.deleteSession(tenant, ref);
    await store.merge(tenant, ref, { conversationState: { fresh: true } }, LIMITS);

    const { versions } = await store.history(tenant, ref, 10);

    expect(versions.map((v) => [v.version, v.context.conversationState])).toEqual([[1, { fresh: true }]]);
    expect(await store.history(tenant, { userId: "user-1", sessionId: "none" }, 10)).toEqual({
      versions: [],
      hasNextPage: false,
    });
  });
});
