import { gzipSync } from "node:zlib";
import { errorCodes, getGraphQL, READ, sessionKeyOf, STORE } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type GraphQLResponse,
  type TestServer,
} from "../helpers/test-server";

const GATEWAY_SECRET = "http-test-gateway-secret";

describe("HTTP", () => {
  let redis: RedisProcess;
  let production: TestServer;
  let development: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    production = await startTestServer({
      redisUrl: redis.url,
      env: {
        NODE_ENV: "production",
        AUTH_MODE: "gateway",
        GATEWAY_SECRET,
        CORS_ORIGINS: "https://a.example, https://b.example",
      },
    });
    development = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await production.close();
    await development.close();
    await redis.stop();
  });

  const prodCaller = (tenant: string, user = "alice") => ({
    ...gatewayHeaders(tenant, user),
    "x-gateway-secret": GATEWAY_SECRET,
  });

  describe("NODE_ENV=production: no stack traces or internals in errors", () => {
    it("sends a client error without a stacktrace (development sends one)", async () => {
      const request = { query: READ, variables: { sessionId: "" } };

      const prod = await production.post(request, prodCaller(freshTenant()));
      const dev = await development.post(request, gatewayHeaders(freshTenant(), "alice"));

      expect(errorCodes(prod)).toEqual(["BAD_USER_INPUT"]);
      expect(prod.body.errors?.[0].extensions).not.toHaveProperty("stacktrace");
      expect(dev.body.errors?.[0].extensions).toHaveProperty("stacktrace");
    });

    it("sends UNAUTHENTICATED without a stacktrace", async () => {
      const response = await production.post({ query: READ, variables: { sessionId: "s1" } });

      expect(response.status).toBe(401);
      expect(errorCodes(response)).toEqual(["UNAUTHENTICATED"]);
      expect(response.body.errors?.[0].extensions).not.toHaveProperty("stacktrace");
    });

    it("masks an internal error's message, on a read and on a write", async () => {
      const tenant = freshTenant();
      const key = sessionKeyOf(tenant, "alice", "s1");
      await redis.admin.set(key, "{this is not a session document");

      const read = await production.post({ query: READ, variables: { sessionId: "s1" } }, prodCaller(tenant));
      const write = await production.post(
        { query: STORE, variables: { input: { sessionId: "s1" } } },
        prodCaller(tenant),
      );
      const devRead = await development.post(
        { query: READ, variables: { sessionId: "s1" } },
        gatewayHeaders(tenant, "alice"),
      );

      for (const response of [read, write]) {
        expect(response.body.errors).toEqual([
          {
            message: "Internal server error",
            path: [expect.any(String)],
            extensions: { code: "INTERNAL_SERVER_ERROR" },
          },
        ]);
        expect(JSON.stringify(response.body)).not.toContain(tenant);
      }
      expect(errorCodes(devRead)).toEqual(["INTERNAL_SERVER_ERROR"]);
      expect(devRead.body.errors?.[0].message).not.toBe("Internal server error");
    });

    it("refuses introspection", async () => {
      const response = await production.post(
        { query: "{ __schema { queryType { name } } }" },
        prodCaller(freshTenant()),
      );

      expect(response.body.errors?.length).toBeGreaterThan(0);
      expect(response.body.data ?? null).toBeNull();
    });
  });

  describe("GET /graphql serves queries only, with CSRF prevention on", () => {
    it("answers a query with the apollo-require-preflight header", async () => {
      const tenant = freshTenant();
      await development.post(
        { query: STORE, variables: { input: { sessionId: "s1", conversationState: { via: "post" } } } },
        gatewayHeaders(tenant, "alice"),
      );

      const response = await getGraphQL(
        development.url,
        { query: READ, variables: { sessionId: "s1" } },
        { ...gatewayHeaders(tenant, "alice"), "apollo-require-preflight": "true" },
      );

      expect(response.status).toBe(200);
      expect(response.body.data).toMatchObject({ sessionContext: { conversationState: { via: "post" } } });
    });

    it("answers a query with the x-apollo-operation-name header", async () => {
      const response = await getGraphQL(
        development.url,
        { query: READ, variables: { sessionId: "s1" }, operationName: "Read" },
        { ...gatewayHeaders(freshTenant(), "alice"), "x-apollo-operation-name": "Read" },
      );

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ data: { sessionContext: null } });
    });

    it("refuses a GET without a preflight header (CSRF prevention)", async () => {
      const response = await getGraphQL(
        development.url,
        { query: READ, variables: { sessionId: "s1" } },
        gatewayHeaders(freshTenant(), "alice"),
      );

      expect(response.status).toBe(400);
      expect(response.body.errors?.[0].message).toMatch(/CSRF/i);
      expect(response.body.data).toBeUndefined();
    });

    it("refuses a mutation over GET and writes nothing", async () => {
      const tenant = freshTenant();

      const response = await getGraphQL(
        development.url,
        { query: STORE, variables: { input: { sessionId: "s1" } } },
        { ...gatewayHeaders(tenant, "alice"), "apollo-require-preflight": "true" },
      );

      expect(response.status).toBe(405);
      expect(response.body.errors?.[0].message).toMatch(/mutation/i);
      expect(await redis.admin.exists(sessionKeyOf(tenant, "alice", "s1"))).toBe(0);
    });
  });

  describe("every /graphql response carries x-request-id", () => {
    it("echoes the caller's x-request-id on success and on errors", async () => {
      const ok = await development.post(
        { query: READ, variables: { sessionId: "s1" } },
        { ...gatewayHeaders(freshTenant(), "alice"), "x-request-id": "req-123.abc" },
      );
      const unauthenticated = await development.post(
        { query: READ, variables: { sessionId: "s1" } },
        { "x-request-id": "req-456" },
      );
      const invalid = await development.post(
        { query: "{ nope" },
        { ...gatewayHeaders(freshTenant(), "alice"), "x-request-id": "req-789" },
      );

      expect(ok.headers.get("x-request-id")).toBe("req-123.abc");
      expect(unauthenticated.status).toBe(401);
      expect(unauthenticated.headers.get("x-request-id")).toBe("req-456");
      expect(invalid.status).toBe(400);
      expect(invalid.headers.get("x-request-id")).toBe("req-789");
    });

    it("makes up a distinct id when none is given, or when the given one is unsafe", async () => {
      const first = await development.post({ query: "{ _service { sdl } }" });
      const second = await development.post({ query: "{ _service { sdl } }" });
      const unsafe = await development.post({ query: "{ _service { sdl } }" }, { "x-request-id": 'a b"<script>' });

      const ids = [first, second, unsafe].map((r) => r.headers.get("x-request-id"));
      expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
      expect(new Set(ids).size).toBe(3);
      expect(ids[2]).not.toContain("script");
    });

    it("carries it on a refused body too", async () => {
      const response = await fetch(`${development.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "req-bad-json" },
        body: "{not json",
      });

      expect(response.status).toBe(400);
      expect(response.headers.get("x-request-id")).toBe("req-bad-json");
    });
  });

  describe("CORS: CORS_ORIGINS lists exact origins, echoed and never *", () => {
    it.each(["https://a.example", "https://b.example"])("echoes the allowed origin %s", async (origin) => {
      const response = await production.post({ query: "{ _service { sdl } }" }, { origin });

      expect(response.status).toBe(200);
      expect(response.headers.get("access-control-allow-origin")).toBe(origin);
    });

    it.each(["https://c.example", "https://a.example.evil.example", "http://a.example"])(
      "does not allow %s",
      async (origin) => {
        const response = await production.post({ query: "{ _service { sdl } }" }, { origin });

        expect(response.headers.get("access-control-allow-origin")).toBeNull();
      },
    );

    it("answers a preflight for an allowed origin with that origin, not *", async () => {
      const response = await fetch(`${production.url}/graphql`, {
        method: "OPTIONS",
        headers: {
          origin: "https://b.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,authorization",
        },
      });

      expect(response.status).toBeLessThan(300);
      expect(response.headers.get("access-control-allow-origin")).toBe("https://b.example");
    });

    it("lets a page of an allowed origin read the request id and the timings", async () => {
      const response = await production.post({ query: "{ _service { sdl } }" }, { origin: "https://a.example" });

      const exposed = response.headers.get("access-control-expose-headers")?.toLowerCase().split(",");
      expect(exposed).toEqual(expect.arrayContaining(["x-request-id", "server-timing"]));
      expect(response.headers.get("timing-allow-origin")).toBe("https://a.example");
    });

    it("names no timing origin for an origin it does not allow", async () => {
      const response = await production.post({ query: "{ _service { sdl } }" }, { origin: "https://c.example" });

      expect(response.headers.get("timing-allow-origin")).toBeNull();
    });

    it("answers a request without Origin (not a browser's cross-origin request) with Vary: Origin and no CORS grant", async () => {
      const response = await production.post({ query: "{ _service { sdl } }" });

      expect(response.status).toBe(200);
      expect(response.headers.get("vary")).toBe("Origin");
      expect([...response.headers.keys()].filter((name) => name.startsWith("access-control-"))).toEqual([]);
      expect(response.headers.get("timing-allow-origin")).toBeNull();
    });

    it("allows in a preflight only the methods /graphql answers", async () => {
      const response = await fetch(`${production.url}/graphql`, {
        method: "OPTIONS",
        headers: { origin: "https://b.example", "access-control-request-method": "PUT" },
      });

      expect(response.headers.get("access-control-allow-methods")?.split(",")).toEqual(["GET", "POST"]);
    });
  });

  describe("request bodies over the limit are refused with a clear error", () => {
    it("answers 413 naming the limit, and writes nothing", async () => {
      const tenant = freshTenant();
      const huge = "x".repeat(2 * 1024 * 1024);

      const response = await development.post(
        { query: STORE, variables: { input: { sessionId: "s1", conversationState: { huge } } } },
        gatewayHeaders(tenant, "alice"),
      );

      expect(response.status).toBe(413);
      expect(response.body.errors?.[0].message).toMatch(/request body is larger than \d+ bytes/);
      expect(await redis.admin.exists(sessionKeyOf(tenant, "alice", "s1"))).toBe(0);
    });

    it("answers 413 to a body over the limit sent in chunks, without a content-length", async () => {
      const tenant = freshTenant();
      const text = JSON.stringify({
        query: STORE,
        variables: { input: { sessionId: "s1", conversationState: { huge: "x".repeat(2 * 1024 * 1024) } } },
      });
      const chunks = new ReadableStream<Uint8Array>({
        start(controller) {
          const bytes = new TextEncoder().encode(text);
          for (let i = 0; i < bytes.length; i += 64 * 1024) controller.enqueue(bytes.subarray(i, i + 64 * 1024));
          controller.close();
        },
      });

      const response = await fetch(`${development.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...gatewayHeaders(tenant, "alice") },
        body: chunks,
        duplex: "half",
      } as RequestInit);

      expect(response.status).toBe(413);
      expect(((await response.json()) as { errors: { message: string }[] }).errors[0].message).toMatch(
        /request body is larger than \d+ bytes/,
      );
      expect(await redis.admin.exists(sessionKeyOf(tenant, "alice", "s1"))).toBe(0);
    });
  });

  describe("request bodies are JSON objects (or arrays), or a clear 400", () => {
    const postRaw = async (body: string | Uint8Array, headers: Record<string, string>) => {
      const response = await fetch(`${development.url}/graphql`, { method: "POST", headers, body });
      return { status: response.status, body: (await response.json()) as GraphQLResponse["body"] };
    };
    const readRequest = JSON.stringify({ query: READ, variables: { sessionId: "s1" } });

    it.each([
      ["not JSON at all", "{query:", /^request body is not valid JSON: /],
      ["a JSON string", '"{ sessionContext(sessionId: \\"s1\\") { version } }"', /^request body is not valid JSON: /],
      ["a JSON number", "42", /^request body is not valid JSON: /],
    ])("%s: 400 BAD_REQUEST", async (_what, body, message) => {
      const response = await postRaw(body, {
        "content-type": "application/json",
        ...gatewayHeaders(freshTenant(), "a"),
      });

      expect(response.status).toBe(400);
      expect(errorCodes({ ...response, headers: new Headers() })).toEqual(["BAD_REQUEST"]);
      expect(response.body.errors?.[0].message).toMatch(message);
    });

    it("an empty body: 400 BAD_REQUEST", async () => {
      const response = await postRaw("", { "content-type": "application/json", ...gatewayHeaders(freshTenant(), "a") });

      expect(response.status).toBe(400);
      expect(errorCodes({ ...response, headers: new Headers() })).toEqual(["BAD_REQUEST"]);
    });

    it.each([
      ["application/json", "application/json", readRequest],
      ["with charset=utf-8", "application/json; charset=utf-8", readRequest],
      ["in other letter cases", "Application/JSON;charset=UTF-8", readRequest],
      ["with a byte order mark", "application/json", `\ufeff${readRequest}`],
      ["in UTF-16", "application/json; charset=utf-16le", Buffer.from(readRequest, "utf16le")],
    ])("reads a body sent as %s", async (_what, contentType, body) => {
      const response = await postRaw(body, { "content-type": contentType, ...gatewayHeaders(freshTenant(), "a") });

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ data: { sessionContext: null } });
    });

    it("reads a gzip-compressed body", async () => {
      const response = await postRaw(gzipSync(readRequest), {
        "content-type": "application/json",
        "content-encoding": "gzip",
        ...gatewayHeaders(freshTenant(), "a"),
      });

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ data: { sessionContext: null } });
    });
  });
});
