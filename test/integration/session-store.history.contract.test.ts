import type { SessionStore } from "../../src/sessions/session-store";
import { freshTenant } from "../helpers/test-server";
import { LIMITS, STORES, tricky, type StoreUnderTest } from "./session-store.harness";

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
