import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ENTITIES, errorCodes, SESSION_FIELDS, STORE } from "../helpers/api";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";

interface Entity {
  __typename?: string;
  tenantId: string;
  userId: string;
  sessionId: string;
  conversationState: Record<string, unknown>;
  version: number;
}

const representation = (userId: string, sessionId: string) => ({ __typename: "SessionContext", userId, sessionId });

function describeFederation(kind: "redis" | "embedded", backend: () => TestServer) {
  const entities = (headers: Record<string, string>, representations: unknown[]) =>
    backend().post<{ _entities: (Entity | null)[] }>({ query: ENTITIES, variables: { representations } }, headers);
  const store = (headers: Record<string, string>, input: Record<string, unknown>) =>
    backend().post({ query: STORE, variables: { input } }, headers);

  describe(`federation (${kind}): _service { sdl } publishes the checked-in schema.graphql`, () => {
    it("answers the SDL of schema.graphql, with the @key on SessionContext", async () => {
      const checkedIn = readFileSync(join(__dirname, "..", "..", "schema.graphql"), "utf8");

      const response = await backend().post<{ _service: { sdl: string } }>({ query: "{ _service { sdl } }" });

      const sdl = response.body.data?._service.sdl ?? "";
      expect(sdl.trimEnd()).toBe(checkedIn.trimEnd());
      expect(sdl).toContain('type SessionContext @key(fields: "userId sessionId")');
    });
  });

  describe(`federation (${kind}): _entities resolves SessionContext representations`, () => {
    it("returns each represented session in order, null for an absent one", async () => {
      const tenant = freshTenant();
      const alice = gatewayHeaders(tenant, "alice");
      await store(alice, { sessionId: "s1", conversationState: { n: 1 } });
      await store(alice, { sessionId: "s2", conversationState: { n: 2 } });

      const response = await entities(alice, [
        representation("alice", "s2"),
        representation("alice", "absent"),
        representation("alice", "s1"),
      ]);

      expect(response.status).toBe(200);
      expect(response.body.errors).toBeUndefined();
      expect(response.body.data?._entities).toEqual([
        expect.objectContaining({ tenantId: tenant, userId: "alice", sessionId: "s2", conversationState: { n: 2 } }),
        null,
        expect.objectContaining({ tenantId: tenant, userId: "alice", sessionId: "s1", conversationState: { n: 1 } }),
      ]);
    });

    it("answers the same session as sessionContext, field for field", async () => {
      const tenant = freshTenant();
      const alice = gatewayHeaders(tenant, "alice");
      await store(alice, { sessionId: "s1", recentInteractions: [{ q: "hi" }], userPreferences: { lang: "de" } });

      const response = await entities(alice, [representation("alice", "s1")]);
      const direct = await backend().post<{ sessionContext: Entity }>(
        { query: `{ sessionContext(sessionId: "s1") { ${SESSION_FIELDS} } }` },
        alice,
      );

      expect(direct.body.data?.sessionContext).toMatchObject({ version: 1, userPreferences: { lang: "de" } });
      expect(response.body.data?._entities).toEqual([direct.body.data?.sessionContext]);
    });

    it("refuses another user's representation with FORBIDDEN for that entry only, without a role", async () => {
      const tenant = freshTenant();
      await store(gatewayHeaders(tenant, "bob"), { sessionId: "s1" });
      await store(gatewayHeaders(tenant, "alice"), { sessionId: "s1" });

      const response = await entities(gatewayHeaders(tenant, "alice"), [
        representation("alice", "s1"),
        representation("bob", "s1"),
      ]);

      expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
      expect(response.body.errors?.[0].path).toEqual(["_entities", 1]);
      expect(response.body.data?._entities).toEqual([expect.objectContaining({ userId: "alice" }), null]);
    });

    it.each(["service", "admin"])("resolves any user's representation of the caller's tenant for %s", async (role) => {
      const tenant = freshTenant();
      await store(gatewayHeaders(tenant, "bob"), { sessionId: "s1" });

      const response = await entities(gatewayHeaders(tenant, "gateway", [role]), [representation("bob", "s1")]);

      expect(response.body.data?._entities).toEqual([expect.objectContaining({ tenantId: tenant, userId: "bob" })]);
    });

    it("never reaches another tenant, whatever the representation carries", async () => {
      const owner = freshTenant("owner");
      await store(gatewayHeaders(owner, "alice"), { sessionId: "s1" });

      const response = await entities(gatewayHeaders(freshTenant("other"), "alice", ["admin"]), [
        representation("alice", "s1"),
        { ...representation("alice", "s1"), tenantId: owner },
      ]);

      expect(response.body).toEqual({ data: { _entities: [null, null] } });
    });

    it.each<[string, Record<string, unknown>, string]>([
      ["an empty sessionId", representation("alice", ""), "representations.sessionId"],
      ["a sessionId over 256 bytes", representation("alice", "s".repeat(257)), "representations.sessionId"],
      ["a sessionId with a control character", representation("alice", "s\u0000"), "representations.sessionId"],
      [
        "a sessionId that is not a string",
        { __typename: "SessionContext", userId: "alice", sessionId: 7 },
        "representations.sessionId",
      ],
      ["an empty userId", representation("", "s1"), "representations.userId"],
      ["a userId over 256 bytes", representation("é".repeat(129), "s1"), "representations.userId"],
      ["a userId with a control character", representation("ali\u001fce", "s1"), "representations.userId"],
    ])("refuses a representation with %s as BAD_USER_INPUT naming the field", async (_case, bad, field) => {
      const tenant = freshTenant();
      const alice = gatewayHeaders(tenant, "alice");
      await store(alice, { sessionId: "s1" });

      const response = await entities(alice, [representation("alice", "s1"), bad]);

      expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
      expect(response.body.errors?.[0].message).toContain(field);
      expect(response.body.data?._entities).toEqual([expect.objectContaining({ sessionId: "s1" }), null]);
    });
  });
}

describe("federation against Redis", () => {
  let server: TestServer;
  useServerOnRedis((started) => (server = started.server));

  describeFederation("redis", () => server);
});

describe("federation against the embedded store", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  describeFederation("embedded", () => server);
});
