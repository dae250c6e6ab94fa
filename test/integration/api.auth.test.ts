import { SignJWT } from "jose";
import { errorCodes, READ, STORE, tenantKeys } from "../helpers/api";
import {
  generateSigningKey,
  signWith,
  startJwksServer,
  type JwksServer,
  type SigningKey,
} from "../helpers/jwks-server";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type GraphQLResponse,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";
import { mintToken, TEST_JWT_SECRET } from "../helpers/tokens";

// Identity is checked in the context factory, before any resolver: every refusal is the whole request, HTTP 401.
function expectUnauthenticated(response: GraphQLResponse<unknown>): void {
  expect(response.status).toBe(401);
  expect(response.body.data).toBeUndefined();
  expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const nowSeconds = () => Math.floor(Date.now() / 1000);
const readOwn = { query: READ, variables: { sessionId: "s1" } };

describe("auth: JWT HS256 (JWT_SECRET)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started), { env: { JWT_SECRET: TEST_JWT_SECRET } });

  it("takes tenant, user and roles from a valid token", async () => {
    const tenant = freshTenant();
    const token = await mintToken({ tenant_id: tenant, sub: "alice", roles: ["service"] });

    const stored = await server.post(
      { query: STORE, variables: { input: { sessionId: "s1", userId: "bob", conversationState: { a: 1 } } } },
      bearer(token),
    );

    expect(stored.status).toBe(200);
    expect(stored.body.data).toMatchObject({ storeSessionContext: { tenantId: tenant, userId: "bob", version: 1 } });
  });

  it.each<[string, () => Promise<string>]>([
    ["expired", () => mintToken({ tenant_id: "t", sub: "u" }, { expiresIn: nowSeconds() - 60 })],
    ["not yet valid (nbf in the future)", () => mintToken({ tenant_id: "t", sub: "u", nbf: nowSeconds() + 3600 })],
    [
      "signed with another secret",
      () => mintToken({ tenant_id: "t", sub: "u" }, { secret: `${TEST_JWT_SECRET}-other` }),
    ],
    [
      "signed with another algorithm (HS512)",
      () =>
        new SignJWT({ tenant_id: "t" })
          .setProtectedHeader({ alg: "HS512" })
          .setSubject("u")
          .setExpirationTime("1h")
          .sign(new TextEncoder().encode(TEST_JWT_SECRET)),
    ],
    [
      "unsigned (alg none)",
      async () => {
        const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
        return `${part({ alg: "none", typ: "JWT" })}.${part({ tenant_id: "t", sub: "u", exp: nowSeconds() + 60 })}.`;
      },
    ],
    ["missing tenant_id", () => mintToken({ sub: "u" })],
    ["missing sub", () => mintToken({ tenant_id: "t" })],
    ["an empty tenant_id", () => mintToken({ tenant_id: "", sub: "u" })],
    ["a tenant_id that is not a string", () => mintToken({ tenant_id: 42, sub: "u" })],
    ["a tenant_id over 256 bytes", () => mintToken({ tenant_id: "t".repeat(257), sub: "u" })],
    ["a sub with a control character", () => mintToken({ tenant_id: "t", sub: "u\u0007" })],
    ["a sub over 256 UTF-8 bytes", () => mintToken({ tenant_id: "t", sub: "é".repeat(129) })],
    ["roles that are not a list of strings", () => mintToken({ tenant_id: "t", sub: "u", roles: "admin" })],
    ["a malformed token", async () => "not.a.jwt"],
  ])("refuses a token that is %s with UNAUTHENTICATED and HTTP 401", async (_case, makeToken) => {
    const token = await makeToken();

    const response = await server.post(readOwn, bearer(token));

    expectUnauthenticated(response);
  });

  it("refuses a request without a bearer token", async () => {
    expectUnauthenticated(await server.post(readOwn));
    expectUnauthenticated(await server.post(readOwn, { authorization: "Basic dTpw" }));
  });

  it("runs no resolver for a refused request: an expired token's mutation writes nothing", async () => {
    const tenant = freshTenant();
    const token = await mintToken({ tenant_id: tenant, sub: "u" }, { expiresIn: nowSeconds() - 60 });

    const response = await server.post({ query: STORE, variables: { input: { sessionId: "s1" } } }, bearer(token));

    expectUnauthenticated(response);
    expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
  });
});

describe("auth: issuer and audience are checked when JWT_ISSUER / JWT_AUDIENCE are set", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({
      redisUrl: redis.url,
      env: { JWT_SECRET: TEST_JWT_SECRET, JWT_ISSUER: "https://idp.example", JWT_AUDIENCE: "session-context" },
    });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("accepts the configured issuer and audience", async () => {
    const token = await mintToken(
      { tenant_id: freshTenant(), sub: "u" },
      { issuer: "https://idp.example", audience: "session-context" },
    );

    const response = await server.post(readOwn, bearer(token));

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ data: { sessionContext: null } });
  });

  it.each([
    ["a wrong issuer", { issuer: "https://evil.example", audience: "session-context" }],
    ["a wrong audience", { issuer: "https://idp.example", audience: "another-api" }],
    ["no issuer", { audience: "session-context" }],
    ["no audience", { issuer: "https://idp.example" }],
  ])("refuses a token with %s", async (_case, options) => {
    const token = await mintToken({ tenant_id: freshTenant(), sub: "u" }, options);

    expectUnauthenticated(await server.post(readOwn, bearer(token)));
  });
});

describe("auth: JWT from a JWKS endpoint (JWKS_URL) with RS256 and ES256 keys", () => {
  let redis: RedisProcess;
  let jwks: JwksServer;
  let server: TestServer;
  let rsa: SigningKey;
  let ec: SigningKey;
  beforeAll(async () => {
    rsa = await generateSigningKey("RS256", "rsa-1");
    ec = await generateSigningKey("ES256", "ec-1");
    jwks = await startJwksServer([rsa, ec]);
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url, env: { JWKS_URL: jwks.url } });
  });
  afterAll(async () => {
    await server.close();
    await jwks.close();
    await redis.stop();
  });

  it.each(["RS256", "ES256"])("accepts a token signed with a published %s key", async (alg) => {
    const tenant = freshTenant();
    const token = await signWith(alg === "RS256" ? rsa : ec, { tenant_id: tenant, sub: "u" });

    const response = await server.post({ query: STORE, variables: { input: { sessionId: "s1" } } }, bearer(token));

    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ storeSessionContext: { tenantId: tenant, userId: "u" } });
  });

  it("refuses a token signed by a key the JWKS does not publish", async () => {
    const unknown = await generateSigningKey("RS256", "rsa-unknown");
    const token = await signWith(unknown, { tenant_id: freshTenant(), sub: "u" });

    expectUnauthenticated(await server.post(readOwn, bearer(token)));
  });

  it("refuses a token signed by an unpublished key that claims a published kid", async () => {
    const impostor = await generateSigningKey("ES256", "ec-1");
    const token = await signWith(impostor, { tenant_id: freshTenant(), sub: "u" });

    expectUnauthenticated(await server.post(readOwn, bearer(token)));
  });

  it("refuses an HS256 token: only the JWKS keys count", async () => {
    const token = await mintToken({ tenant_id: freshTenant(), sub: "u" });

    expectUnauthenticated(await server.post(readOwn, bearer(token)));
  });
});

describe("auth: gateway headers with GATEWAY_SECRET", () => {
  const secret = "gateway-secret-for-tests";
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started), {
    env: { AUTH_MODE: "gateway", GATEWAY_SECRET: secret },
  });

  it("takes tenant, user and roles from the headers when the secret matches", async () => {
    const tenant = freshTenant();

    const response = await server.post(
      { query: STORE, variables: { input: { sessionId: "s1", userId: "bob" } } },
      { ...gatewayHeaders(tenant, "alice", ["reader", "service"]), "x-gateway-secret": secret },
    );

    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ storeSessionContext: { tenantId: tenant, userId: "bob" } });
  });

  it.each([
    ["missing", {}],
    ["wrong", { "x-gateway-secret": `${secret}-wrong` }],
    ["empty", { "x-gateway-secret": "" }],
  ])("refuses identity headers when x-gateway-secret is %s", async (_case, secretHeader) => {
    const tenant = freshTenant();

    const response = await server.post(
      { query: STORE, variables: { input: { sessionId: "s1" } } },
      { ...gatewayHeaders(tenant, "alice", ["admin"]), ...secretHeader },
    );

    expectUnauthenticated(response);
    expect(await tenantKeys(redis.admin, tenant)).toEqual([]);
  });

  it("serves `{ _service { sdl } }` with no identity and no gateway secret", async () => {
    const response = await server.post({ query: "{ _service { sdl } }" });

    expect(response.status).toBe(200);
    expect(response.body.data).toEqual({ _service: { sdl: expect.stringContaining("type SessionContext") } });
  });

  it.each([
    ["_service together with sessionContext", `{ _service { sdl } sessionContext(sessionId: "s1") { version } }`],
    ["_service together with _entities", `{ _service { sdl } _entities(representations: []) { __typename } }`],
    ["a mutation", `mutation { storeSessionContext(input: {sessionId: "s1"}) { version } }`],
    ["a plain read", `{ sessionContext(sessionId: "s1") { version } }`],
    ["a read aliased as _service", `{ _service: sessionContext(sessionId: "s1") { version } }`],
    [
      "_service with a read in an inline fragment",
      `{ _service { sdl } ... on Query { sessionContext(sessionId: "s1") { version } } }`,
    ],
    ["a read in a fragment spread", `{ ...F } fragment F on Query { sessionContext(sessionId: "s1") { version } }`],
  ])("refuses %s without identity", async (_case, query) => {
    expectUnauthenticated(await server.post({ query }));
  });

  it("refuses the read operation of a document whose other operation asks only for _service", async () => {
    const query = `query Sdl { _service { sdl } } query Read { sessionContext(sessionId: "s1") { version } }`;

    expectUnauthenticated(await server.post({ query, operationName: "Read" }));
    expect((await server.post({ query, operationName: "Sdl" })).status).toBe(200);
  });
});

describe("auth: gateway headers without a secret", () => {
  let server: TestServer;
  useServerOnRedis((started) => (server = started.server));

  it.each<[string, Record<string, string>]>([
    ["no headers", {}],
    ["no x-tenant-id", { "x-user-id": "u" }],
    ["no x-user-id", { "x-tenant-id": "t" }],
    ["an x-tenant-id over 256 bytes", gatewayHeaders("t".repeat(257), "u")],
    ["an x-user-id with a control character", gatewayHeaders("t", "u\tser")],
  ])("refuses a request with %s", async (_case, headers) => {
    expectUnauthenticated(await server.post(readOwn, headers));
  });

  it("serves `{ _service { sdl } }` with no identity", async () => {
    const response = await server.post({ query: "query Sdl { _service { sdl } }", operationName: "Sdl" });

    expect(response.status).toBe(200);
    expect(typeof (response.body.data as { _service: { sdl: unknown } })._service.sdl).toBe("string");
  });
});
