import { ENTITIES, errorCodes, MERGE, READ, sessionKeyOf, STORE, tenantKeys, tenantSessionKeys } from "../helpers/api";
import { type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";

interface Session {
  tenantId: string;
  userId: string;
  sessionId: string;
  conversationState: Record<string, unknown>;
  version: number;
}

/**
 * The role rules through the API, against Redis and against the embedded store: both must isolate alike.
 * `backend()` is read inside the tests because beforeAll fills it.
 */
function describeRoles(kind: "redis" | "embedded", backend: () => { server: TestServer }) {
  const as = (tenant: string, user: string, roles: string[] = []) => gatewayHeaders(tenant, user, roles);
  const post = (body: { query: string; variables?: Record<string, unknown> }, headers: Record<string, string>) =>
    backend().server.post<Record<string, Session | null> & { _entities?: (Session | null)[] }>(body, headers);
  const store = (headers: Record<string, string>, input: Record<string, unknown>) =>
    post({ query: STORE, variables: { input } }, headers);
  const read = (headers: Record<string, string>, sessionId: string, userId?: string) =>
    post({ query: READ, variables: { sessionId, userId } }, headers);
  const entity = (headers: Record<string, string>, userId: string, sessionId: string) =>
    post(
      { query: ENTITIES, variables: { representations: [{ __typename: "SessionContext", userId, sessionId }] } },
      headers,
    );

  describe(`roles (${kind}): a caller with no role acts only on its own sessions`, () => {
    it("reads and writes its own session with userId omitted or equal to its own id", async () => {
      const tenant = freshTenant();
      const alice = as(tenant, "alice");

      const stored = await store(alice, { sessionId: "s1", conversationState: { n: 1 } });
      const merged = await post({ query: MERGE, variables: { input: { sessionId: "s1", userId: "alice" } } }, alice);
      const omitted = await read(alice, "s1");
      const named = await read(alice, "s1", "alice");

      expect(stored.body.data?.storeSessionContext).toMatchObject({ tenantId: tenant, userId: "alice", version: 1 });
      expect(merged.body.data?.mergeSessionContext).toMatchObject({ userId: "alice", version: 2 });
      expect(omitted.body.data?.sessionContext).toMatchObject({ userId: "alice", conversationState: { n: 1 } });
      expect(named.body.data?.sessionContext).toEqual(omitted.body.data?.sessionContext);
    });

    it("is FORBIDDEN to read another user's session, through sessionContext and _entities", async () => {
      const tenant = freshTenant();
      await store(as(tenant, "bob"), { sessionId: "s1", conversationState: { secret: true } });

      const query = await read(as(tenant, "alice"), "s1", "bob");
      const entities = await entity(as(tenant, "alice"), "bob", "s1");

      expect(errorCodes(query)).toEqual(["FORBIDDEN"]);
      expect(query.body.data?.sessionContext).toBeNull();
      expect(errorCodes(entities)).toEqual(["FORBIDDEN"]);
      expect(entities.body.data?._entities).toEqual([null]);
    });

    it.each([
      ["storeSessionContext", STORE],
      ["mergeSessionContext", MERGE],
    ])("is FORBIDDEN to write another user's session with %s, and nothing is written", async (_field, query) => {
      const tenant = freshTenant();
      await store(as(tenant, "bob"), { sessionId: "s1", conversationState: { owner: "bob" } });

      const response = await post(
        { query, variables: { input: { sessionId: "s1", userId: "bob", conversationState: { owner: "alice" } } } },
        as(tenant, "alice"),
      );
      const after = await read(as(tenant, "bob"), "s1");

      expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
      expect(response.body.data).toBeNull();
      expect(after.body.data?.sessionContext).toMatchObject({ version: 1, conversationState: { owner: "bob" } });
    });

    it("gains nothing from roles it does not have: an unknown role acts like no role", async () => {
      const tenant = freshTenant();

      const response = await read(as(tenant, "alice", ["reader", "Service", "ADMIN"]), "s1", "bob");

      expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    });
  });

  describe.each(["service", "admin"])(`roles (${kind}): %s acts on any user of its own tenant`, (role) => {
    it("writes and reads another user's session, through sessionContext and _entities", async () => {
      const tenant = freshTenant();
      const caller = as(tenant, "backend", [role]);

      const stored = await store(caller, { sessionId: "s1", userId: "bob", conversationState: { by: role } });
      const merged = await post(
        { query: MERGE, variables: { input: { sessionId: "s1", userId: "bob", userPreferences: { lang: "fr" } } } },
        caller,
      );
      const query = await read(caller, "s1", "bob");
      const entities = await entity(caller, "bob", "s1");
      const ownerView = await read(as(tenant, "bob"), "s1");

      expect(stored.body.data?.storeSessionContext).toMatchObject({ tenantId: tenant, userId: "bob", version: 1 });
      expect(merged.body.data?.mergeSessionContext).toMatchObject({ version: 2, userPreferences: { lang: "fr" } });
      expect(query.body.data?.sessionContext).toMatchObject({ userId: "bob", conversationState: { by: role } });
      expect(entities.body.data?._entities).toEqual([query.body.data?.sessionContext]);
      expect(ownerView.body.data?.sessionContext).toEqual(query.body.data?.sessionContext);
    });
  });

  describe(`roles (${kind}): no role ever reaches another tenant`, () => {
    it.each([[[]], [["service"]], [["admin"]], [["service", "admin"]]])(
      "roles %j: another tenant's session with the same user and session ids is simply null",
      async (roles) => {
        const owner = freshTenant("owner");
        const other = freshTenant("other");
        await store(as(owner, "alice"), { sessionId: "s1", conversationState: { tenant: "owner" } });

        const query = await read(as(other, "alice", roles), "s1", "alice");
        const entities = await entity(as(other, "alice", roles), "alice", "s1");

        expect(query.body).toEqual({ data: { sessionContext: null } });
        expect(entities.body).toEqual({ data: { _entities: [null] } });
      },
    );

    it("takes the tenant from the request, never from an entity representation", async () => {
      const owner = freshTenant("owner");
      const other = freshTenant("other");
      await store(as(owner, "alice"), { sessionId: "s1" });

      const entities = await post(
        {
          query: ENTITIES,
          variables: {
            representations: [{ __typename: "SessionContext", tenantId: owner, userId: "alice", sessionId: "s1" }],
          },
        },
        as(other, "alice", ["admin"]),
      );

      expect(entities.body).toEqual({ data: { _entities: [null] } });
    });

    it("lands an admin's writes in its own tenant only, leaving the other tenant's session as it was", async () => {
      const owner = freshTenant("owner");
      const other = freshTenant("other");
      await store(as(owner, "alice"), { sessionId: "s1", conversationState: { tenant: "owner" } });

      const stored = await store(as(other, "root", ["admin"]), {
        sessionId: "s1",
        userId: "alice",
        conversationState: { tenant: "other" },
      });
      const merged = await post(
        { query: MERGE, variables: { input: { sessionId: "s1", userId: "alice", interruptedQueries: ["q"] } } },
        as(other, "root", ["admin"]),
      );
      const ownerView = await read(as(owner, "alice"), "s1");

      expect(stored.body.data?.storeSessionContext).toMatchObject({ tenantId: other, version: 1 });
      expect(merged.body.data?.mergeSessionContext).toMatchObject({ tenantId: other, version: 2 });
      expect(ownerView.body.data?.sessionContext).toMatchObject({
        tenantId: owner,
        version: 1,
        conversationState: { tenant: "owner" },
        interruptedQueries: [],
      });
    });
  });
}

describe("roles against Redis", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  describeRoles("redis", () => ({ server }));

  describe("roles (redis): writes land in the caller's tenant, as Redis shows", () => {
    it("keeps another tenant's key byte for byte and writes only under the caller's tenant prefix", async () => {
      const owner = freshTenant("owner");
      const other = freshTenant("other");
      await server.post(
        { query: STORE, variables: { input: { sessionId: "s1", conversationState: { tenant: "owner" } } } },
        gatewayHeaders(owner, "alice"),
      );
      const ownerKey = sessionKeyOf(owner, "alice", "s1");
      const before = await redis.admin.get(ownerKey);

      for (const roles of [[], ["service"], ["admin"]]) {
        await server.post(
          { query: MERGE, variables: { input: { sessionId: "s1", userId: "alice", conversationState: { x: 1 } } } },
          gatewayHeaders(other, roles.length ? "root" : "alice", roles),
        );
      }

      expect(before).not.toBeNull();
      expect(await redis.admin.get(ownerKey)).toBe(before);
      expect(await tenantSessionKeys(redis.admin, owner)).toEqual([ownerKey]);
      expect(await tenantSessionKeys(redis.admin, other)).toEqual([sessionKeyOf(other, "alice", "s1")]);
      expect(JSON.parse((await redis.admin.get(sessionKeyOf(other, "alice", "s1"))) ?? "null")).toMatchObject({
        version: 3,
      });
    });

    it("writes nothing anywhere for a FORBIDDEN write", async () => {
      const tenant = freshTenant();

      const response = await server.post(
        { query: STORE, variables: { input: { sessionId: "s1", userId: "bob" } } },
        gatewayHeaders(tenant, "alice"),
      );

      expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });
  });
});

describe("roles against the embedded store", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  describeRoles("embedded", () => ({ server }));
});
