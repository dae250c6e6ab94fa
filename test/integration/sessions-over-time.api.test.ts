import { activityIndexKey, expiryIndexKey, userExpiryKey, userIndexKey } from "../../src/store/keys";
import { aclDenials, startManagedRedis } from "../helpers/managed-redis";
import { pollUntil } from "../helpers/poll";
import { startRedis, waitForRedisClock, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type GraphQLResponse,
  type TestServer,
} from "../helpers/test-server";

/**
 * The contract's "Sessions over time" through the API, on Redis, on Redis over TLS as the README's least-privilege
 * ACL user, and on the embedded store: tenant settings, listing, erasure, orphan purge and versions.
 */
const SESSION_FIELDS = "sessionId userId version ttlSeconds interruptedQueries recentInteractions lastUpdated";

type Backend = { name: string; redis?: RedisProcess; server: TestServer; stop?: () => Promise<void> };

const backends: [string, "redis" | "least-privilege" | "memory"][] = [
  ["redis", "redis"],
  ["Redis over TLS as the least-privilege ACL user", "least-privilege"],
  ["memory", "memory"],
];

describe.each(backends)("sessions over time (%s store)", (_name, kind) => {
  const backend = {} as Backend;

  beforeAll(async () => {
    const env = { CLEANUP_MIN_INTERVAL_SECONDS: "1" };
    if (kind === "least-privilege") {
      const managed = await startManagedRedis();
      backend.redis = managed.redis;
      backend.stop = managed.stop;
      backend.server = await startTestServer({ env: { ...env, ...managed.env } });
      return;
    }
    backend.redis = kind === "redis" ? await startRedis() : undefined;
    backend.stop = backend.redis?.stop;
    backend.server = await startTestServer({ redisUrl: backend.redis?.url, env });
  });
  afterAll(async () => {
    await backend.server.close();
    await backend.stop?.();
  });

  const gql = <T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown>,
    headers: Record<string, string>,
  ) => backend.server.post<T>({ query, variables }, headers);

  const write = (tenant: string, user: string, input: Record<string, unknown>, roles: string[] = []) =>
    gql(
      `mutation($input: SessionContextInput!) { mergeSessionContext(input: $input) { ${SESSION_FIELDS} } }`,
      { input },
      gatewayHeaders(tenant, user, roles),
    );

  const list = (tenant: string, user: string, args: Record<string, unknown>, roles: string[] = []) =>
    gql<{
      userSessions: {
        totalCount: number;
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
        edges: { cursor: string; node: { sessionId: string; lastUpdated: string } }[];
      };
    }>(
      `query($userId: ID, $first: Int, $after: String) {
         userSessions(userId: $userId, first: $first, after: $after) {
           totalCount pageInfo { hasNextPage endCursor } edges { cursor node { sessionId lastUpdated } }
         }
       }`,
      args,
      gatewayHeaders(tenant, user, roles),
    );

  const settings = (tenant: string, roles: string[]) =>
    gql<{ tenantSettings: Record<string, unknown> }>(
      `{ tenantSettings { tenantId defaultTtlSeconds orphanThresholdSeconds cleanupIntervalSeconds maxRecentInteractions maxInterruptedQueries lastCleanupAt lastCleanupPurged nextCleanupAt } }`,
      {},
      gatewayHeaders(tenant, "ops", roles),
    );

  const updateSettings = (tenant: string, input: Record<string, unknown>, roles = ["admin"]) =>
    gql<{ updateTenantSettings: Record<string, unknown> }>(
      `mutation($input: TenantSettingsInput!) { updateTenantSettings(input: $input) { defaultTtlSeconds orphanThresholdSeconds cleanupIntervalSeconds maxRecentInteractions maxInterruptedQueries nextCleanupAt } }`,
      { input },
      gatewayHeaders(tenant, "ops", roles),
    );

  const purge = (tenant: string, olderThanSeconds: number | undefined, roles = ["admin"]) =>
    gql<{ purgeOrphans: { tenantId: string; purgedCount: number; thresholdSeconds: number; durationMs: number } }>(
      `mutation($s: Int) { purgeOrphans(olderThanSeconds: $s) { tenantId purgedCount thresholdSeconds durationMs } }`,
      { s: olderThanSeconds },
      gatewayHeaders(tenant, "ops", roles),
    );

  const codeOf = (response: GraphQLResponse) => response.body.errors?.[0]?.extensions?.code;

  describe("tenant settings", () => {
    it("has the contract's defaults for a tenant that never changed them, for service and admin", async () => {
      const tenant = freshTenant();
      for (const role of ["service", "admin"]) {
        const response = await settings(tenant, [role]);
        expect(response.body.data?.tenantSettings).toEqual({
          tenantId: tenant,
          defaultTtlSeconds: 86400,
          orphanThresholdSeconds: 172800,
          cleanupIntervalSeconds: 86400,
          maxRecentInteractions: 100,
          maxInterruptedQueries: 100,
          lastCleanupAt: null,
          lastCleanupPurged: null,
          nextCleanupAt: null,
        });
      }
    });

    it("is FORBIDDEN to read without service or admin, and to change without admin", async () => {
      const tenant = freshTenant();
      expect(codeOf(await settings(tenant, []))).toBe("FORBIDDEN");
      expect(codeOf(await updateSettings(tenant, { defaultTtlSeconds: 60 }, ["service"]))).toBe("FORBIDDEN");
      expect((await settings(tenant, ["service"])).body.data?.tenantSettings.defaultTtlSeconds).toBe(86400);
    });

    it.each([
      ["defaultTtlSeconds", 0],
      ["defaultTtlSeconds", 2592001],
      ["orphanThresholdSeconds", 0],
      ["cleanupIntervalSeconds", 0],
      ["cleanupIntervalSeconds", 2592001],
      ["maxRecentInteractions", 0],
      ["maxInterruptedQueries", 10001],
    ])("refuses %s = %d with BAD_USER_INPUT naming it, changing nothing", async (field, value) => {
      const tenant = freshTenant();
      const response = await updateSettings(tenant, { maxRecentInteractions: 5, [field]: value });
      expect(codeOf(response)).toBe("BAD_USER_INPUT");
      expect(response.body.errors?.[0].extensions?.field).toBe(`input.${field}`);
      expect((await settings(tenant, ["admin"])).body.data?.tenantSettings.maxRecentInteractions).toBe(100);
    });

    it("applies the default TTL and the list caps from the next write on", async () => {
      const tenant = freshTenant();
      await write(tenant, "u", { sessionId: "before", recentInteractions: [{ n: 1 }, { n: 2 }, { n: 3 }] });
      const updated = await updateSettings(tenant, {
        defaultTtlSeconds: 600,
        maxRecentInteractions: 2,
        maxInterruptedQueries: 1,
      });
      expect(updated.body.data?.updateTenantSettings).toMatchObject({
        defaultTtlSeconds: 600,
        maxRecentInteractions: 2,
        maxInterruptedQueries: 1,
      });

      const fresh = await write(tenant, "u", {
        sessionId: "after",
        interruptedQueries: ["a", "b"],
        recentInteractions: [{ n: 1 }],
      });
      expect(fresh.body.data?.mergeSessionContext).toMatchObject({
        ttlSeconds: 600,
        interruptedQueries: ["b"],
        recentInteractions: [{ n: 1 }],
      });
      // An existing session keeps its own TTL; its list is cut to the new cap when it is written.
      const old = await write(tenant, "u", { sessionId: "before", recentInteractions: [{ n: 4 }] });
      expect(old.body.data?.mergeSessionContext).toMatchObject({
        ttlSeconds: 86400,
        recentInteractions: [{ n: 3 }, { n: 4 }],
      });
    });

    it("schedules the first cleanup one interval after the first write, and after a change of interval", async () => {
      const tenant = freshTenant();
      const written = await write(tenant, "u", { sessionId: "s" });
      const lastUpdated = Date.parse(
        String((written.body.data?.mergeSessionContext as { lastUpdated: string }).lastUpdated),
      );
      const first = (await settings(tenant, ["admin"])).body.data?.tenantSettings;
      expect(Date.parse(String(first?.nextCleanupAt))).toBe(lastUpdated + 86_400_000);

      const before = Date.now();
      const changed = await updateSettings(tenant, { cleanupIntervalSeconds: 120 });
      const next = Date.parse(String(changed.body.data?.updateTenantSettings.nextCleanupAt));
      expect(next).toBeGreaterThanOrEqual(before + 120_000 - 1000);
      expect(next).toBeLessThanOrEqual(Date.now() + 120_000 + 1000);
    });

    it("belongs to one tenant: another tenant's settings stay the defaults", async () => {
      const [a, b] = [freshTenant(), freshTenant()];
      await updateSettings(a, { defaultTtlSeconds: 60 });
      expect((await settings(b, ["admin"])).body.data?.tenantSettings.defaultTtlSeconds).toBe(86400);
      expect((await write(b, "u", { sessionId: "s" })).body.data?.mergeSessionContext).toMatchObject({
        ttlSeconds: 86400,
      });
    });
  });

  describe("userSessions", () => {
    it("lists a user's sessions newest last write first, page by page, with the total", async () => {
      const tenant = freshTenant();
      for (const id of ["s1", "s2", "s3", "s4", "s5"]) await write(tenant, "u", { sessionId: id });
      await write(tenant, "u", { sessionId: "s2" }); // s2 becomes the newest
      await write(tenant, "other-user", { sessionId: "x" });

      const seen: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 5; page++) {
        const response = await list(tenant, "u", { first: 2, after });
        const connection = response.body.data!.userSessions;
        expect(connection.totalCount).toBe(5);
        seen.push(...connection.edges.map((e) => e.node.sessionId));
        if (!connection.pageInfo.hasNextPage) break;
        after = connection.pageInfo.endCursor;
      }
      expect(seen).toEqual(["s2", "s5", "s4", "s3", "s1"]);
    });

    it("stays correct while sessions are written: nothing shown twice, no unchanged session skipped", async () => {
      const tenant = freshTenant();
      for (let i = 1; i <= 6; i++) await write(tenant, "u", { sessionId: `s${i}` });
      const firstPage = (await list(tenant, "u", { first: 3 })).body.data!.userSessions;
      expect(firstPage.edges.map((e) => e.node.sessionId)).toEqual(["s6", "s5", "s4"]);

      await write(tenant, "u", { sessionId: "s5" }); // already shown: moves to the top
      await write(tenant, "u", { sessionId: "s7" }); // new: above the cursor
      const rest = (await list(tenant, "u", { first: 10, after: firstPage.pageInfo.endCursor })).body.data!
        .userSessions;
      expect(rest.edges.map((e) => e.node.sessionId)).toEqual(["s3", "s2", "s1"]);
      expect(rest.pageInfo.hasNextPage).toBe(false);
    });

    it("refuses first outside 1..100 and a cursor it did not issue", async () => {
      const tenant = freshTenant();
      for (const first of [0, 101]) {
        const response = await list(tenant, "u", { first });
        expect(codeOf(response)).toBe("BAD_USER_INPUT");
        expect(response.body.errors?.[0].extensions?.field).toBe("first");
      }
      const response = await list(tenant, "u", { first: 5, after: "not-a-cursor" });
      expect(codeOf(response)).toBe("BAD_USER_INPUT");
      expect(response.body.errors?.[0].extensions?.field).toBe("after");
    });

    it("lists another user's sessions only for service and admin, and never another tenant's", async () => {
      const [tenant, other] = [freshTenant(), freshTenant()];
      await write(tenant, "alice", { sessionId: "a1" });
      await write(other, "alice", { sessionId: "elsewhere" });
      expect(codeOf(await list(tenant, "bob", { userId: "alice", first: 5 }))).toBe("FORBIDDEN");
      const asService = (await list(tenant, "bob", { userId: "alice", first: 5 }, ["service"])).body.data!.userSessions;
      expect(asService.edges.map((e) => e.node.sessionId)).toEqual(["a1"]);
    });
  });

  describe("deleteSessionContext and deleteUserSessions", () => {
    it("deletes one session: true when it existed, false after", async () => {
      const tenant = freshTenant();
      await write(tenant, "u", { sessionId: "s" });
      const del = `mutation($s: ID!) { deleteSessionContext(sessionId: $s) }`;
      expect((await gql(del, { s: "s" }, gatewayHeaders(tenant, "u"))).body.data).toEqual({
        deleteSessionContext: true,
      });
      expect((await gql(del, { s: "s" }, gatewayHeaders(tenant, "u"))).body.data).toEqual({
        deleteSessionContext: false,
      });
      const read = await gql(`{ sessionContext(sessionId: "s") { version } }`, {}, gatewayHeaders(tenant, "u"));
      expect(read.body.data).toEqual({ sessionContext: null });
      expect((await list(tenant, "u", { first: 5 })).body.data!.userSessions.totalCount).toBe(0);
    });

    it("erases every session of a user and its index entries, and nothing of others", async () => {
      const [tenant, other] = [freshTenant(), freshTenant()];
      for (const id of ["s1", "s2", "s3"]) await write(tenant, "gone", { sessionId: id });
      await write(tenant, "stays", { sessionId: "s1" });
      await write(other, "gone", { sessionId: "s1" });

      const response = await gql(`mutation { deleteUserSessions }`, {}, gatewayHeaders(tenant, "gone"));
      expect(response.body.data).toEqual({ deleteUserSessions: 3 });
      expect((await list(tenant, "gone", { first: 5 })).body.data!.userSessions.totalCount).toBe(0);
      expect((await list(tenant, "stays", { first: 5 })).body.data!.userSessions.totalCount).toBe(1);
      expect((await list(other, "gone", { first: 5 })).body.data!.userSessions.totalCount).toBe(1);
      if (backend.redis) {
        const admin = backend.redis.admin;
        expect(await admin.exists(userIndexKey(tenant, "gone"), userExpiryKey(tenant, "gone"))).toBe(0);
        expect(await admin.zcard(activityIndexKey(tenant))).toBe(1);
      }
    });

    it("erases another user only for service and admin", async () => {
      const tenant = freshTenant();
      await write(tenant, "alice", { sessionId: "s" });
      const del = `mutation($u: ID) { deleteUserSessions(userId: $u) }`;
      expect(codeOf(await gql(del, { u: "alice" }, gatewayHeaders(tenant, "bob")))).toBe("FORBIDDEN");
      expect((await gql(del, { u: "alice" }, gatewayHeaders(tenant, "bob", ["service"]))).body.data).toEqual({
        deleteUserSessions: 1,
      });
    });
  });

  describe("purgeOrphans", () => {
    it("is admin only", async () => {
      const tenant = freshTenant();
      expect(codeOf(await purge(tenant, 60, ["service"]))).toBe("FORBIDDEN");
      expect(codeOf(await purge(tenant, 60, []))).toBe("FORBIDDEN");
    });

    it("deletes exactly the tenant's sessions idle longer than the threshold, and no other tenant's", async () => {
      const [tenant, other] = [freshTenant(), freshTenant()];
      for (const id of ["o1", "o2", "o3"]) await write(tenant, "u", { sessionId: id });
      await write(other, "u", { sessionId: "o1" });
      await waitForStoreClock(1100); // the orphans are now idle for more than one second
      await write(tenant, "u", { sessionId: "fresh" });
      await write(tenant, "u", { sessionId: "o2" }); // written again: no longer an orphan

      const response = await purge(tenant, 1);
      expect(response.body.data?.purgeOrphans).toMatchObject({ tenantId: tenant, purgedCount: 2, thresholdSeconds: 1 });
      expect(response.body.data?.purgeOrphans.durationMs).toBeGreaterThanOrEqual(0);
      const left = (await list(tenant, "u", { first: 10 })).body.data!.userSessions.edges.map((e) => e.node.sessionId);
      expect(left).toEqual(["o2", "fresh"]);
      expect((await list(other, "u", { first: 10 })).body.data!.userSessions.totalCount).toBe(1);
    });

    it("defaults to the tenant's orphan threshold", async () => {
      const tenant = freshTenant();
      await write(tenant, "u", { sessionId: "s" });
      await updateSettings(tenant, { orphanThresholdSeconds: 3600 });
      const response = await purge(tenant, undefined);
      expect(response.body.data?.purgeOrphans).toMatchObject({ purgedCount: 0, thresholdSeconds: 3600 });
    });

    it("refuses olderThanSeconds outside 1..MAX_TTL_SECONDS", async () => {
      const response = await purge(freshTenant(), 0);
      expect(codeOf(response)).toBe("BAD_USER_INPUT");
      expect(response.body.errors?.[0].extensions?.field).toBe("olderThanSeconds");
    });

    it("drops index entries of sessions that expired by TTL without counting them", async () => {
      const tenant = freshTenant();
      await write(tenant, "u", { sessionId: "short", ttlSeconds: 1 });
      await write(tenant, "u", { sessionId: "long" });
      await waitForStoreClock(1100);

      expect((await list(tenant, "u", { first: 10 })).body.data!.userSessions.totalCount).toBe(1);
      const response = await purge(tenant, 3600);
      expect(response.body.data?.purgeOrphans.purgedCount).toBe(0);
      if (backend.redis) {
        const admin = backend.redis.admin;
        expect(await admin.zrange(activityIndexKey(tenant), 0, -1)).toEqual(["u:long"]);
        expect(await admin.zrange(expiryIndexKey(tenant), 0, -1)).toEqual(["u:long"]);
      }
    });
  });

  describe("expectedVersion", () => {
    it("writes when it matches and fails with CONFLICT, writing nothing, when it does not", async () => {
      const tenant = freshTenant();
      const store = `mutation($input: SessionContextInput!) { storeSessionContext(input: $input) { version conversationState } }`;
      const headers = gatewayHeaders(tenant, "u");
      expect(
        (await gql(store, { input: { sessionId: "s", expectedVersion: 0, conversationState: { a: 1 } } }, headers)).body
          .data,
      ).toEqual({
        storeSessionContext: { version: 1, conversationState: { a: 1 } },
      });
      const conflict = await gql(
        store,
        { input: { sessionId: "s", expectedVersion: 0, conversationState: { a: 2 } } },
        headers,
      );
      expect(codeOf(conflict)).toBe("CONFLICT");
      const merged = await write(tenant, "u", { sessionId: "s", expectedVersion: 1, interruptedQueries: ["q"] });
      expect(merged.body.data?.mergeSessionContext).toMatchObject({ version: 2, interruptedQueries: ["q"] });
      const read = await gql(`{ sessionContext(sessionId: "s") { version conversationState } }`, {}, headers);
      expect(read.body.data).toEqual({ sessionContext: { version: 2, conversationState: { a: 1 } } });
    });
  });

  if (kind === "least-privilege") {
    // Last, after every test above ran as the ACL user.
    describe("least privilege", () => {
      it("needed nothing the README's ACL rule does not grant (Redis's ACL LOG is empty)", async () => {
        expect(await aclDenials(backend.redis!.admin)).toEqual([]);
      });
    });
  }

  /** Lets `ms` pass on the store's clock: Redis's TIME for Redis (the clock writes are stamped with), else ours. */
  async function waitForStoreClock(ms: number): Promise<void> {
    if (backend.redis) return waitForRedisClock(backend.redis.admin, ms);
    // The embedded store of the test server stamps with Date.now: the time has to pass for real.
    const target = Date.now() + ms;
    await pollUntil(
      `the clock passed ${ms} ms`,
      () => Date.now(),
      (now) => now >= target,
      { timeoutMs: ms + 5000, intervalMs: 10 },
    );
  }
});
