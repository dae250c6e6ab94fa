import { errorCodes, MERGE, READ, sessionKeyOf, STORE, tenantKeys, tenantSessionKeys } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

const MAX_CONTEXT_BYTES = 2048;
const MAX_TTL_SECONDS = 3600;

/** UTF-8 bytes of the JSON of the four context fields, the way the contract measures a context. */
function contextBytes(fields: Record<string, unknown>): number {
  return Buffer.byteLength(
    JSON.stringify({
      conversationState: fields.conversationState ?? {},
      interruptedQueries: fields.interruptedQueries ?? [],
      recentInteractions: fields.recentInteractions ?? [],
      userPreferences: fields.userPreferences ?? {},
    }),
  );
}

/** A conversationState whose context (other fields empty) is exactly `bytes` long, padded with 2-byte "é". */
function stateOfContextBytes(bytes: number): Record<string, string> {
  const frame = contextBytes({ conversationState: { pad: "" } });
  const room = bytes - frame;
  return { pad: "é".repeat(Math.floor(room / 2)) + "x".repeat(room % 2) };
}

describe("bad input", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({
      redisUrl: redis.url,
      env: { MAX_CONTEXT_BYTES: String(MAX_CONTEXT_BYTES), MAX_TTL_SECONDS: String(MAX_TTL_SECONDS) },
    });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  // A service caller, so that a bad userId is refused for what it is, not as another user.
  const service = (tenant: string) => gatewayHeaders(tenant, "svc", ["service"]);
  const write = (query: string, tenant: string, input: Record<string, unknown>) =>
    server.post({ query, variables: { input } }, service(tenant));

  /** BAD_USER_INPUT whose message names `field` and whose extensions.field is the input path holding it. */
  function expectBadUserInput(response: Awaited<ReturnType<typeof write>>, field: string, path = field): void {
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.body.errors?.[0].message).toContain(field);
    expect(String(response.body.errors?.[0].extensions?.field)).toContain(path);
    expect(response.body.data ?? null).toBeNull();
  }

  const badIds: [string, string][] = [
    ["empty", ""],
    ["over 256 bytes", "i".repeat(257)],
    ["over 256 UTF-8 bytes in 129 characters", "é".repeat(129)],
    ["with U+0000", "a\u0000b"],
    ["with a newline", "a\nb"],
    ["with U+001F", "a\u001fb"],
    ["with U+007F", "a\u007fb"],
  ];

  describe.each([
    ["storeSessionContext", STORE],
    ["mergeSessionContext", MERGE],
  ])("bad input to %s is BAD_USER_INPUT naming the field, and nothing is written", (_mutation, query) => {
    it.each(badIds)("a sessionId %s", async (_case, id) => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: id }), "sessionId");
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it.each(badIds)("a userId %s", async (_case, id) => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: "s1", userId: id }), "userId");
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it.each([0, -1, -86400, MAX_TTL_SECONDS + 1])("ttlSeconds %d", async (ttlSeconds) => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: "s1", ttlSeconds }), "ttlSeconds");
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it("expectedVersion below 0", async () => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: "s1", expectedVersion: -1 }), "expectedVersion");
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it.each<[string, unknown]>([
      ["conversationState", []],
      ["conversationState", [{ a: 1 }]],
      ["conversationState", "text"],
      ["conversationState", 42],
      ["userPreferences", ["dark"]],
      ["userPreferences", "dark"],
      ["userPreferences", 1.5],
    ])("%s that is not an object (%j)", async (field, value) => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: "s1", [field]: value }), field);
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it.each<[string, unknown[]]>([
      ["a string", [{ ok: 1 }, "text"]],
      ["an array", [[{ ok: 1 }]]],
      ["a number", [3]],
    ])("recentInteractions with an entry that is %s", async (_case, recentInteractions) => {
      const tenant = freshTenant();

      expectBadUserInput(await write(query, tenant, { sessionId: "s1", recentInteractions }), "recentInteractions");
      expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
    });

    it("a context one byte over MAX_CONTEXT_BYTES (counted in UTF-8 bytes); exactly the limit is accepted", async () => {
      const tenant = freshTenant();
      const over = stateOfContextBytes(MAX_CONTEXT_BYTES + 1);
      const exact = stateOfContextBytes(MAX_CONTEXT_BYTES);

      const refused = await write(query, tenant, { sessionId: "s1", conversationState: over });
      const keysAfterRefusal = await tenantKeys(redis.admin, tenant);
      const accepted = await write(query, tenant, { sessionId: "s2", conversationState: exact });

      expect(contextBytes({ conversationState: over })).toBe(MAX_CONTEXT_BYTES + 1);
      expectBadUserInput(refused, "MAX_CONTEXT_BYTES", "input");
      expect(keysAfterRefusal).toEqual([]);
      expect(accepted.body.errors).toBeUndefined();
      expect(await tenantSessionKeys(redis.admin, tenant)).toEqual([sessionKeyOf(tenant, "svc", "s2")]);
    });
  });

  describe("a context over MAX_CONTEXT_BYTES after a merge onto existing content is refused, the old value kept", () => {
    it.each<[string, Record<string, unknown>]>([
      ["conversationState keys", { conversationState: { more: "m".repeat(700) } }],
      ["userPreferences keys", { userPreferences: { more: "m".repeat(700) } }],
      ["appended recentInteractions", { recentInteractions: [{ more: "m".repeat(700) }] }],
      ["appended interruptedQueries", { interruptedQueries: ["m".repeat(700)] }],
    ])("merging %s", async (_case, patch) => {
      const tenant = freshTenant();
      const existing = { sessionId: "s1", conversationState: { old: "o".repeat(1500) } };
      await write(STORE, tenant, existing);
      const key = sessionKeyOf(tenant, "svc", "s1");
      const before = await redis.admin.get(key);

      const response = await write(MERGE, tenant, { sessionId: "s1", ...patch });

      expect(contextBytes(patch)).toBeLessThan(MAX_CONTEXT_BYTES); // only the merged context is too large
      expectBadUserInput(response, "MAX_CONTEXT_BYTES", "input");
      expect(before).not.toBeNull();
      expect(await redis.admin.get(key)).toBe(before);
    });

    it("storing over an existing session keeps the old value", async () => {
      const tenant = freshTenant();
      await write(STORE, tenant, { sessionId: "s1", conversationState: { old: true } });
      const key = sessionKeyOf(tenant, "svc", "s1");
      const before = await redis.admin.get(key);

      const response = await write(STORE, tenant, {
        sessionId: "s1",
        conversationState: stateOfContextBytes(MAX_CONTEXT_BYTES + 100),
      });

      expectBadUserInput(response, "MAX_CONTEXT_BYTES", "input");
      expect(await redis.admin.get(key)).toBe(before);
    });
  });

  describe("bad ids on reads are BAD_USER_INPUT naming the argument", () => {
    it.each(badIds)("a sessionId %s", async (_case, id) => {
      const response = await server.post({ query: READ, variables: { sessionId: id } }, service(freshTenant()));

      expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
      expect(response.body.errors?.[0].message).toContain("sessionId");
      expect(response.body.data).toEqual({ sessionContext: null });
    });

    it.each(badIds)("a userId %s", async (_case, id) => {
      const response = await server.post(
        { query: READ, variables: { sessionId: "s1", userId: id } },
        service(freshTenant()),
      );

      expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
      expect(response.body.errors?.[0].message).toContain("userId");
      expect(response.body.data).toEqual({ sessionContext: null });
    });
  });

  describe("an expectedVersion that differs from the stored version is CONFLICT, and nothing is written", () => {
    it.each([
      ["storeSessionContext", STORE],
      ["mergeSessionContext", MERGE],
    ])("%s against an existing session", async (_mutation, query) => {
      const tenant = freshTenant();
      await write(STORE, tenant, { sessionId: "s1", conversationState: { v: 1 } });
      const key = sessionKeyOf(tenant, "svc", "s1");
      const before = await redis.admin.get(key);

      const stale = await write(query, tenant, { sessionId: "s1", expectedVersion: 0, conversationState: { v: 2 } });
      const ahead = await write(query, tenant, { sessionId: "s1", expectedVersion: 2, conversationState: { v: 2 } });

      expect(errorCodes(stale)).toEqual(["CONFLICT"]);
      expect(errorCodes(ahead)).toEqual(["CONFLICT"]);
      expect(await redis.admin.get(key)).toBe(before);
    });

    it.each([
      ["storeSessionContext", STORE],
      ["mergeSessionContext", MERGE],
    ])("%s against an absent session (version 0)", async (_mutation, query) => {
      const tenant = freshTenant();

      const conflict = await write(query, tenant, { sessionId: "s1", expectedVersion: 1 });
      const keysAfterConflict = await tenantKeys(redis.admin, tenant);
      const created = await write(query, tenant, { sessionId: "s1", expectedVersion: 0 });

      expect(errorCodes(conflict)).toEqual(["CONFLICT"]);
      expect(keysAfterConflict).toEqual([]);
      expect(created.body.errors).toBeUndefined();
      expect(await tenantSessionKeys(redis.admin, tenant)).toEqual([sessionKeyOf(tenant, "svc", "s1")]);
    });

    it("writes when expectedVersion equals the stored version", async () => {
      const tenant = freshTenant();
      await write(STORE, tenant, { sessionId: "s1" });

      const response = await write(MERGE, tenant, { sessionId: "s1", expectedVersion: 1, conversationState: { a: 1 } });

      expect(response.body.data).toMatchObject({ mergeSessionContext: { version: 2, conversationState: { a: 1 } } });
    });
  });
});
