import { errorCodes, MERGE, STORE, tenantKeys } from "../helpers/api";
import { waitForRedisClock, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, type TestServer, ON_EACH_STORE, useServerOnStore } from "../helpers/test-server";

/**
 * History and undo through the API, on Redis and on the embedded store: every write is remembered with what it was
 * given, who made it and the whole context after it; any kept version can be restored as a new write.
 */

const HISTORY = `query History($sessionId: ID!, $userId: ID, $first: Int, $after: String) {
  sessionContextHistory(sessionId: $sessionId, userId: $userId, first: $first, after: $after) {
    edges { cursor node {
      id version at operation actorUserId actorRoles change
      context { conversationState interruptedQueries recentInteractions userPreferences ttlSeconds }
    } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const RESTORE = `mutation Restore($sessionId: ID!, $userId: ID, $version: Int!, $expectedVersion: Int) {
  restoreSessionContext(sessionId: $sessionId, userId: $userId, version: $version, expectedVersion: $expectedVersion) {
    version conversationState interruptedQueries recentInteractions userPreferences ttlSeconds
  }
}`;
const SETTINGS = `mutation Settings($input: TenantSettingsInput!) { updateTenantSettings(input: $input) { historyDepth } }`;

interface Version {
  id: string;
  version: number;
  at: string;
  operation: string;
  actorUserId: string;
  actorRoles: string[];
  change: Record<string, unknown>;
  context: Record<string, unknown>;
}
interface HistoryData {
  sessionContextHistory: {
    edges: { cursor: string; node: Version }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

/** Values the contract promises to keep exactly, through history too. */
const TRICKY = {
  n: 0.30000000000000004,
  big: 9007199254740991,
  huge: 1e300,
  emptyObject: {},
  emptyList: [],
  text: "héllo 👩🏽‍💻 שלום \u0000 \u2028",
  ["__proto__"]: { polluted: true },
};

describe.each(ON_EACH_STORE)("history and undo, on %s", (_name, onRedis) => {
  let redis: RedisProcess | undefined;
  let server: TestServer;
  useServerOnStore(onRedis, (started) => ({ redis, server } = started));

  const as = (tenant: string, user = "u1", roles: string[] = []) => gatewayHeaders(tenant, user, roles);
  const history = async (tenant: string, variables: Record<string, unknown> = {}, headers = as(tenant)) =>
    server.post<HistoryData>({ query: HISTORY, variables: { sessionId: "s1", ...variables } }, headers);
  const versionsOf = async (tenant: string, variables: Record<string, unknown> = {}) =>
    (await history(tenant, { first: 100, ...variables })).body.data!.sessionContextHistory.edges.map((e) => e.node);
  const write = async (tenant: string, query: string, input: Record<string, unknown>, headers = as(tenant)) => {
    const response = await server.post({ query, variables: { input: { sessionId: "s1", ...input } } }, headers);
    expect(response.body.errors).toBeUndefined();
    return response;
  };
  const settings = async (tenant: string, input: Record<string, unknown>) => {
    const response = await server.post({ query: SETTINGS, variables: { input } }, as(tenant, "ops", ["admin"]));
    expect(response.body.errors).toBeUndefined();
  };

  it("remembers every write: operation, time, actor, what it was given and the whole context after it", async () => {
    const tenant = freshTenant();
    await write(tenant, STORE, { conversationState: { step: 1 }, userPreferences: { lang: "en" } });
    await write(tenant, MERGE, { conversationState: { step: 2 }, recentInteractions: [{ q: "hi" }] });
    await write(tenant, MERGE, { userId: "u1", interruptedQueries: ["where?"] }, as(tenant, "agent", ["service"]));

    const versions = await versionsOf(tenant);

    expect(versions.map((v) => [v.version, v.operation, v.actorUserId, v.actorRoles])).toEqual([
      [3, "MERGE", "agent", ["service"]], // a service writing for a user is the service
      [2, "MERGE", "u1", []],
      [1, "STORE", "u1", []],
    ]);
    expect(versions.map((v) => v.change)).toEqual([
      { interruptedQueries: ["where?"] },
      { conversationState: { step: 2 }, recentInteractions: [{ q: "hi" }] },
      {
        conversationState: { step: 1 },
        interruptedQueries: [],
        recentInteractions: [],
        userPreferences: { lang: "en" },
      },
    ]);
    expect(versions.map((v) => v.context)).toEqual([
      {
        conversationState: { step: 2 },
        interruptedQueries: ["where?"],
        recentInteractions: [{ q: "hi" }],
        userPreferences: { lang: "en" },
        ttlSeconds: 86_400,
      },
      {
        conversationState: { step: 2 },
        interruptedQueries: [],
        recentInteractions: [{ q: "hi" }],
        userPreferences: { lang: "en" },
        ttlSeconds: 86_400,
      },
      {
        conversationState: { step: 1 },
        interruptedQueries: [],
        recentInteractions: [],
        userPreferences: { lang: "en" },
        ttlSeconds: 86_400,
      },
    ]);
    expect(new Set(versions.map((v) => v.id)).size).toBe(3);
    const times = versions.map((v) => Date.parse(v.at));
    expect(times[0]).toBeGreaterThanOrEqual(times[1]);
    expect(times[1]).toBeGreaterThanOrEqual(times[2]);
  });

  it("keeps changes and old contexts exact: numbers, empty containers, unicode, __proto__ as data", async () => {
    const tenant = freshTenant();
    const tricky = JSON.parse(JSON.stringify(TRICKY)) as Record<string, unknown>; // "__proto__" an own key
    await write(tenant, MERGE, { conversationState: tricky, recentInteractions: [tricky] });
    await write(tenant, MERGE, { conversationState: { n: 1, emptyObject: [] }, recentInteractions: [{}] });
    await write(tenant, STORE, { userPreferences: tricky });

    const [third, second, first] = await versionsOf(tenant);

    expect(first.change).toEqual({ conversationState: tricky, recentInteractions: [tricky] });
    expect(first.context.conversationState).toEqual(tricky);
    expect(Object.keys(first.context.conversationState as object)).toContain("__proto__");
    expect(second.context.conversationState).toEqual({ ...tricky, n: 1, emptyObject: [] });
    expect(second.context.recentInteractions).toEqual([tricky, {}]);
    expect(third.change.userPreferences).toEqual(tricky);
    expect(third.context).toMatchObject({ conversationState: {}, recentInteractions: [], userPreferences: tricky });
  });

  it("restores a kept version as a new write, keeping the versions in between", async () => {
    const tenant = freshTenant();
    await write(tenant, STORE, { conversationState: { step: 1 }, interruptedQueries: ["a"] });
    await write(tenant, MERGE, { conversationState: { step: 2, extra: true }, interruptedQueries: ["b"] });
    await write(tenant, MERGE, { userPreferences: { theme: "dark" } });

    const restored = await server.post({ query: RESTORE, variables: { sessionId: "s1", version: 1 } }, as(tenant));
    const versions = await versionsOf(tenant);

    expect(restored.body.errors).toBeUndefined();
    expect(restored.body.data?.restoreSessionContext).toEqual({
      version: 4,
      conversationState: { step: 1 },
      interruptedQueries: ["a"],
      recentInteractions: [],
      userPreferences: {},
      ttlSeconds: 86_400,
    });
    expect(versions.map((v) => [v.version, v.operation])).toEqual([
      [4, "RESTORE"],
      [3, "MERGE"],
      [2, "MERGE"],
      [1, "STORE"],
    ]);
    expect(versions[0].change).toEqual({ restoredVersion: 1 });
    expect(versions[1].context.userPreferences).toEqual({ theme: "dark" }); // nothing lost
  });

  it("refuses a restore with CONFLICT on expectedVersion, and of a version not kept with BAD_USER_INPUT; writes nothing", async () => {
    const tenant = freshTenant();
    await settings(tenant, { historyDepth: 2 });
    for (const step of [1, 2, 3]) await write(tenant, MERGE, { conversationState: { step } });

    const conflict = await server.post(
      { query: RESTORE, variables: { sessionId: "s1", version: 2, expectedVersion: 2 } },
      as(tenant),
    );
    const tooOld = await server.post({ query: RESTORE, variables: { sessionId: "s1", version: 1 } }, as(tenant));
    const never = await server.post({ query: RESTORE, variables: { sessionId: "s1", version: 9 } }, as(tenant));

    expect(errorCodes(conflict)).toEqual(["CONFLICT"]);
    for (const refused of [tooOld, never]) {
      expect(errorCodes(refused)).toEqual(["BAD_USER_INPUT"]);
      expect(refused.body.errors?.[0].extensions?.field).toBe("version");
    }
    expect((await versionsOf(tenant)).map((v) => v.version)).toEqual([3, 2]); // the newest historyDepth
  });

  it("keeps nothing with historyDepth 0, and restores nothing then", async () => {
    const tenant = freshTenant();
    await write(tenant, MERGE, { conversationState: { step: 1 } });
    await settings(tenant, { historyDepth: 0 });
    await write(tenant, MERGE, { conversationState: { step: 2 } });

    const restore = await server.post({ query: RESTORE, variables: { sessionId: "s1", version: 1 } }, as(tenant));

    expect(await versionsOf(tenant)).toEqual([]);
    expect(errorCodes(restore)).toEqual(["BAD_USER_INPUT"]);
  });

  it("pages newest first with cursors", async () => {
    const tenant = freshTenant();
    for (const step of [1, 2, 3, 4, 5]) await write(tenant, MERGE, { conversationState: { step } });

    const first = (await history(tenant, { first: 2 })).body.data!.sessionContextHistory;
    const second = (await history(tenant, { first: 2, after: first.pageInfo.endCursor })).body.data!
      .sessionContextHistory;
    const last = (await history(tenant, { first: 2, after: second.pageInfo.endCursor })).body.data!
      .sessionContextHistory;

    expect([first, second, last].map((page) => page.edges.map((e) => e.node.version))).toEqual([[5, 4], [3, 2], [1]]);
    expect([first, second, last].map((page) => page.pageInfo.hasNextPage)).toEqual([true, true, false]);
    expect(second.edges[1].node.context.conversationState).toEqual({ step: 2 });
  });

  it("works back through list caps exactly: each version's lists as they were", async () => {
    const tenant = freshTenant();
    await server.post(
      { query: `mutation { updateTenantSettings(input: {maxRecentInteractions: 3}) { maxRecentInteractions } }` },
      as(tenant, "ops", ["admin"]),
    );
    for (const n of [1, 2, 3, 4, 5]) await write(tenant, MERGE, { recentInteractions: [{ n }] });
    await write(tenant, MERGE, { recentInteractions: [{ n: 6 }, { n: 7 }, { n: 8 }, { n: 9 }] }); // more than the cap

    const lists = (await versionsOf(tenant)).map((v) =>
      (v.context.recentInteractions as { n: number }[]).map((i) => i.n),
    );

    expect(lists).toEqual([[7, 8, 9], [3, 4, 5], [2, 3, 4], [1, 2, 3], [1, 2], [1]]);
  });

  it("applies the access rules: own sessions, service for any user of its tenant, never another tenant", async () => {
    const tenant = freshTenant();
    await write(tenant, MERGE, { conversationState: { mine: true } });

    const otherUser = await history(tenant, { userId: "u1" }, as(tenant, "u2"));
    const service = await history(tenant, { userId: "u1" }, as(tenant, "agent", ["service"]));
    const otherTenant = await history(freshTenant(), { userId: "u1" }, as(freshTenant(), "agent", ["service"]));
    const badId = await history(tenant, { sessionId: "" });

    expect(errorCodes(otherUser)).toEqual(["FORBIDDEN"]);
    expect(service.body.data?.sessionContextHistory.edges).toHaveLength(1);
    expect(otherTenant.body.data?.sessionContextHistory.edges).toEqual([]);
    expect(errorCodes(badId)).toEqual(["BAD_USER_INPUT"]);
  });

  it("logs nothing for a write that failed (bad input, CONFLICT)", async () => {
    const tenant = freshTenant();
    await write(tenant, MERGE, { conversationState: { step: 1 } });

    const badTtl = await server.post(
      { query: MERGE, variables: { input: { sessionId: "s1", ttlSeconds: 0 } } },
      as(tenant),
    );
    const conflict = await server.post(
      { query: MERGE, variables: { input: { sessionId: "s1", expectedVersion: 7 } } },
      as(tenant),
    );

    expect([errorCodes(badTtl), errorCodes(conflict)]).toEqual([["BAD_USER_INPUT"], ["CONFLICT"]]);
    expect((await versionsOf(tenant)).map((v) => v.version)).toEqual([1]);
  });

  it("gives 200 concurrent merges versions 2..201, each with its own entry, in order", async () => {
    const tenant = freshTenant();
    await settings(tenant, { historyDepth: 1000 });
    await write(tenant, STORE, {});

    await Promise.all(Array.from({ length: 200 }, (_, i) => write(tenant, MERGE, { recentInteractions: [{ i }] })));
    const versions = await versionsOf(tenant, { first: 100 });
    const older = await versionsOf(tenant, {
      first: 100,
      after: (await history(tenant, { first: 100 })).body.data!.sessionContextHistory.pageInfo.endCursor,
    });
    const all = [...versions, ...older];

    expect(all.map((v) => v.version)).toEqual(Array.from({ length: 200 }, (_, i) => 201 - i));
    // Each entry appended exactly the interaction its merge was given, and each context is the one before plus it.
    for (let i = 0; i < all.length - 1; i++) {
      const [after, before] = [
        all[i].context.recentInteractions as unknown[],
        all[i + 1].context.recentInteractions as unknown[],
      ];
      expect(after.slice(-1)).toEqual(all[i].change.recentInteractions);
      expect(after.slice(0, -1).slice(-before.length)).toEqual(before.slice(-(after.length - 1)));
    }
  });

  if (onRedis) {
    it("leaves nothing of an erased user in Redis: no key, no index entry, no log entry", async () => {
      const tenant = freshTenant();
      for (const sessionId of ["s1", "s2"]) {
        await write(tenant, MERGE, { sessionId, conversationState: { secret: sessionId } });
        await write(tenant, MERGE, { sessionId, conversationState: { more: true } });
      }
      await write(tenant, MERGE, { sessionId: "keep", userId: "u2" }, as(tenant, "u2"));

      const erased = await server.post({ query: `mutation { deleteUserSessions }` }, as(tenant));
      const keys = await tenantKeys(redis!.admin, tenant);
      const members = await Promise.all(
        keys
          .filter((key) => !key.endsWith(":settings"))
          .map(async (key) => ((await redis!.admin.type(key)) === "zset" ? redis!.admin.zrange(key, 0, -1) : [key])),
      );

      expect(erased.body.data).toEqual({ deleteUserSessions: 2 });
      expect(keys.filter((key) => key.includes(":user:u1:"))).toEqual([]);
      expect(members.flat().filter((entry) => entry.includes("u1"))).toEqual([]);
    });

    it("deletes a session's log with it, and a purge does too", async () => {
      const tenant = freshTenant();
      await write(tenant, MERGE, { conversationState: { a: 1 } });
      await write(tenant, MERGE, { sessionId: "s2", conversationState: { a: 1 } });

      await server.post({ query: `mutation { deleteSessionContext(sessionId: "s1") }` }, as(tenant));
      await waitForRedisClock(redis!.admin, 1100); // s2's last write is now over a second old
      await server.post(
        { query: `mutation { purgeOrphans(olderThanSeconds: 1) { purgedCount } }` },
        as(tenant, "ops", ["admin"]),
      );

      expect((await tenantKeys(redis!.admin, tenant)).filter((key) => key.includes(":history:"))).toEqual([]);
    });
  }
});
