import { createHash } from "node:crypto";
import { DOCUMENT_LIMITS } from "../../src/execution/rules/document-limits";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";

/** GraphQL hardening: document limits, persisted queries in Redis, and what production hides. */
const ALL_FIELDS =
  "id tenantId userId sessionId conversationState interruptedQueries recentInteractions userPreferences storedAt lastUpdated expiresAt ttlSeconds version";

describe("document limits", () => {
  let server: TestServer;
  useServerOnRedis((started) => (server = started.server));
  const headers = () => gatewayHeaders(freshTenant(), "u");
  const refusal = (response: Awaited<ReturnType<TestServer["post"]>>) => ({
    code: response.body.errors?.[0].extensions?.code,
    message: response.body.errors?.[0].message,
  });

  it(`refuses a document deeper than ${DOCUMENT_LIMITS.maxDepth} with GRAPHQL_VALIDATION_FAILED naming the limit`, async () => {
    // Our own types nest 4 deep at most; `__type { ofType { … } }` can nest without end. (`__schema`, which
    // Sandbox's introspection query starts with, is exempt.)
    const ofType = (levels: number) => {
      let selection = "name";
      for (let i = 0; i < levels; i++) selection = `ofType { ${selection} }`;
      return `{ __type(name: "SessionContext") { fields { type { ${selection} } } } }`;
    };
    expect((await server.post({ query: ofType(DOCUMENT_LIMITS.maxDepth - 4) }, headers())).body.errors).toBeUndefined();
    const refused = refusal(await server.post({ query: ofType(DOCUMENT_LIMITS.maxDepth) }, headers()));
    expect(refused.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(refused.message).toContain(`depth limit of ${DOCUMENT_LIMITS.maxDepth}`);

    const sandboxStyle = `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }`;
    expect((await server.post({ query: sandboxStyle }, headers())).body.errors).toBeUndefined();
  });

  it(`refuses more than ${DOCUMENT_LIMITS.maxAliases} aliases with GRAPHQL_VALIDATION_FAILED naming the limit`, async () => {
    // (Aliases of __typename are free: graphql-armor does not count them.)
    const aliases = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `a${i}: userSessions(first: 1) { totalCount }`).join(" ")} }`;
    expect((await server.post({ query: aliases(DOCUMENT_LIMITS.maxAliases) }, headers())).body.errors).toBeUndefined();
    const refused = refusal(await server.post({ query: aliases(DOCUMENT_LIMITS.maxAliases + 1) }, headers()));
    expect(refused.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(refused.message).toContain(`Aliases limit of ${DOCUMENT_LIMITS.maxAliases}`);
  });

  it("allows the largest legitimate reads and refuses a costlier document", async () => {
    const hundredReads = `{ ${Array.from({ length: 100 }, (_, i) => `a${i}: sessionContext(sessionId: "s${i}") { ${ALL_FIELDS} }`).join(" ")} }`;
    const fullPage = `{ userSessions(first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${ALL_FIELDS} } } } }`;
    expect((await server.post({ query: hundredReads }, headers())).body.errors).toBeUndefined();
    expect((await server.post({ query: fullPage }, headers())).body.errors).toBeUndefined();

    const pages = Array.from(
      { length: 2 },
      (_, i) => `p${i}: userSessions(first: 100) { edges { node { ${ALL_FIELDS} } } }`,
    );
    const refused = refusal(await server.post({ query: `{ ${pages.join(" ")} }` }, headers()));
    expect(refused.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(refused.message).toContain(`Cost limit of ${DOCUMENT_LIMITS.maxCost}`);
  });
});

describe("automatic persisted queries, kept in Redis", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  it("asks for the query once, then runs it from its hash alone; the hash lives in Redis for every replica", async () => {
    const query = `query Persisted { __typename }`;
    const sha256Hash = createHash("sha256").update(query).digest("hex");
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    const headers = gatewayHeaders(freshTenant(), "u");

    const unknown = await server.post({ extensions } as never, headers);
    expect(unknown.body.errors?.[0].extensions?.code).toBe("PERSISTED_QUERY_NOT_FOUND");
    expect((await server.post({ query, extensions } as never, headers)).body.data).toEqual({ __typename: "Query" });
    expect(await redis.admin.exists(`scs:apq:${sha256Hash}`)).toBe(1);

    const replica = await startTestServer({ redisUrl: redis.url });
    try {
      expect((await replica.post({ extensions } as never, headers)).body.data).toEqual({ __typename: "Query" });
    } finally {
      await replica.close();
    }
  });
});

describe("production hides what development shows", () => {
  let redis: RedisProcess;
  let production: TestServer;
  let development: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    development = await startTestServer({ redisUrl: redis.url });
    production = await startTestServer({
      redisUrl: redis.url,
      env: { NODE_ENV: "production", AUTH_MODE: "gateway", GATEWAY_SECRET: "s3cret" },
    });
  });
  afterAll(async () => {
    await Promise.all([production.close(), development.close()]);
    await redis.stop();
  });
  const prodHeaders = () => ({ ...gatewayHeaders(freshTenant(), "u"), "x-gateway-secret": "s3cret" });

  it("turns introspection off unless INTROSPECTION=true", async () => {
    const introspect = { query: "{ __schema { queryType { name } } }" };
    expect((await development.post(introspect, gatewayHeaders("t", "u"))).body.data).toEqual({
      __schema: { queryType: { name: "Query" } },
    });
    const refused = await production.post(introspect, prodHeaders());
    expect(refused.body.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");

    const opened = await startTestServer({
      redisUrl: redis.url,
      env: { NODE_ENV: "production", AUTH_MODE: "gateway", GATEWAY_SECRET: "s3cret", INTROSPECTION: "true" },
    });
    try {
      expect((await opened.post(introspect, prodHeaders())).body.data).toEqual({
        __schema: { queryType: { name: "Query" } },
      });
    } finally {
      await opened.close();
    }
  });

  it("hides field suggestions", async () => {
    const typo = { query: '{ sessionContxt(sessionId: "s") { version } }' };
    expect((await development.post(typo, gatewayHeaders("t", "u"))).body.errors?.[0].message).toContain("Did you mean");
    expect((await production.post(typo, prodHeaders())).body.errors?.[0].message).not.toContain("Did you mean");
  });

  it("serves Apollo Sandbox in development only", async () => {
    const page = (server: TestServer) => fetch(`${server.url}/graphql`, { headers: { accept: "text/html" } });
    const dev = await page(development);
    expect(dev.status).toBe(200);
    expect(await dev.text()).toContain("sandbox");
    const prod = await page(production);
    expect(prod.headers.get("content-type") ?? "").not.toContain("text/html");
  });
});
