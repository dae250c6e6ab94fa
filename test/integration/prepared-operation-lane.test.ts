import { createHash, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { ENTITIES, MERGE, READ, sessionKeyOf, STORE } from "../helpers/api";
import { parseMetrics, valueOf } from "../helpers/metrics";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * The prepared-operation lane: once Apollo has parsed and validated a document, later requests with the same text
 * and operation name skip Apollo's request pipeline. Each case sends one request twice, with a query text no other
 * case uses: Apollo answers the first; the lane answers the second where it should (and must answer exactly as
 * Apollo did), Apollo again where the lane must stand aside. `graphql_prepared_lane_requests_total` tells which.
 */

const GATEWAY_SECRET = "lane-test-gateway-secret";

interface Answer {
  status: number;
  contentType: string | null;
  text: string;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
    extensions?: Record<string, unknown>;
  };
}

/** The same document under a text no other request has used, so Apollo sees it first. */
const unseen = (query: string) => `${query}\n# ${randomUUID()}`;

describe("prepared-operation lane", () => {
  let redis: RedisProcess;
  let production: TestServer;
  let development: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    production = await startTestServer({
      redisUrl: redis.url,
      env: { NODE_ENV: "production", AUTH_MODE: "gateway", GATEWAY_SECRET },
    });
    development = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await production.close();
    await development.close();
    await redis.stop();
  });

  const caller = (tenant: string, user = "alice", roles: string[] = []) => ({
    ...gatewayHeaders(tenant, user, roles),
    "x-gateway-secret": GATEWAY_SECRET,
  });

  const send = async (server: TestServer, body: unknown, headers: Record<string, string>): Promise<Answer> => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, contentType: response.headers.get("content-type"), text, body: JSON.parse(text) };
  };

  const scrape = async (server: TestServer) => parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
  const servedByLane = async (server: TestServer) =>
    valueOf(await scrape(server), "graphql_prepared_lane_requests_total");

  /** Sends `first`, then `second` (the same by default); says which of them the lane answered. */
  const twice = async (
    server: TestServer,
    first: { body: unknown; headers: Record<string, string> },
    second = first,
  ) => {
    const before = await servedByLane(server);
    const a = await send(server, first.body, first.headers);
    const between = await servedByLane(server);
    const b = await send(server, second.body, second.headers);
    const after = await servedByLane(server);
    return { first: a, second: b, firstByLane: between - before, secondByLane: after - between };
  };

  const stored = async (tenant: string, user = "alice", sessionId = "s1") => {
    const response = await production.post(
      { query: STORE, variables: { input: { sessionId, conversationState: { step: 3, total: 0.1 + 0.2 } } } },
      caller(tenant, user),
    );
    expect(response.body.errors).toBeUndefined();
  };

  describe("answers what Apollo answered, byte for byte", () => {
    it("a read of a stored session", async () => {
      const tenant = freshTenant();
      await stored(tenant);
      const request = { body: { query: unseen(READ), variables: { sessionId: "s1" } }, headers: caller(tenant) };

      const { first, second, firstByLane, secondByLane } = await twice(production, request);

      expect([firstByLane, secondByLane]).toEqual([0, 1]);
      expect(second).toEqual(first);
      expect(second.status).toBe(200);
      expect(second.contentType).toBe("application/json; charset=utf-8");
      expect(second.body.data?.sessionContext).toMatchObject({ conversationState: { step: 3, total: 0.1 + 0.2 } });
    });

    it("a read copies the stored context as stored: keys in the order merges wrote them, text as kept", async () => {
      const tenant = freshTenant();
      const state = { step: 3, note: 'é 👩🏽‍💻 "q" \u2028 \ud800', nested: { empty: [], none: {} } };
      const write = async (query: string, input: Record<string, unknown>) =>
        expect((await production.post({ query, variables: { input } }, caller(tenant))).body.errors).toBeUndefined();
      await write(STORE, { sessionId: "s1", conversationState: state, recentInteractions: [{ a: 1 }] });
      // A merge appends the new key after the others; an object parsed in JavaScript would put "7" first.
      await write(MERGE, { sessionId: "s1", conversationState: { "7": "later" }, recentInteractions: [{ b: [] }] });
      const admin = new Redis(redis.url);
      const document = (await admin.get(sessionKeyOf(tenant, "alice", "s1")))!;
      admin.disconnect();
      const storedText = (field: string, next: string) => document.split(`"${field}":`)[1].split(`,"${next}":`)[0];
      const request = { body: { query: unseen(READ), variables: { sessionId: "s1" } }, headers: caller(tenant) };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second.text).toBe(first.text);
      expect(storedText("conversationState", "interruptedQueries")).toBe(
        `{"step":3,"note":${JSON.stringify(state.note)},"nested":{"empty":[],"none":{}},"7":"later"}`,
      );
      for (const answer of [first, second]) {
        expect(answer.text).toContain(`"conversationState":${storedText("conversationState", "interruptedQueries")}`);
        expect(answer.text).toContain(`"recentInteractions":[{"a":1},{"b":[]}]`);
        expect(answer.text).toContain(`"userPreferences":{}`);
      }
    });

    it("a read of a session that is not there", async () => {
      const request = {
        body: { query: unseen(READ), variables: { sessionId: "none" } },
        headers: caller(freshTenant()),
      };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.body).toEqual({ data: { sessionContext: null } });
    });

    it("FORBIDDEN, counted by its code like Apollo's errors", async () => {
      const tenant = freshTenant();
      await stored(tenant, "alice");
      const request = {
        body: { query: unseen(READ), variables: { sessionId: "s1", userId: "alice" } },
        headers: caller(tenant, "bob"),
      };
      const before = valueOf(await scrape(production), "graphql_errors_total", { code: "FORBIDDEN" });

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.status).toBe(200);
      expect(second.body.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
      expect(valueOf(await scrape(production), "graphql_errors_total", { code: "FORBIDDEN" })).toBe(before + 2);
    });

    it("_entities with one refused representation: null in its place", async () => {
      const tenant = freshTenant();
      await stored(tenant, "bob");
      const representations = [
        { __typename: "SessionContext", userId: "bob", sessionId: "s1" },
        { __typename: "SessionContext", userId: "alice", sessionId: "s1" },
      ];
      const request = {
        body: { query: unseen(ENTITIES), variables: { representations } },
        headers: caller(tenant, "bob"),
      };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.body.data?._entities).toEqual([expect.objectContaining({ userId: "bob" }), null]);
      expect(second.body.errors?.map((e) => [e.extensions?.code, (e as { path?: unknown }).path])).toEqual([
        ["FORBIDDEN", ["_entities", 1]],
      ]);
    });

    it("an internal error, masked in production", async () => {
      const tenant = freshTenant();
      await redis.admin.set(sessionKeyOf(tenant, "alice", "s1"), "{not a session document");
      const request = { body: { query: unseen(READ), variables: { sessionId: "s1" } }, headers: caller(tenant) };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.body.errors).toEqual([
        { message: "Internal server error", path: ["sessionContext"], extensions: { code: "INTERNAL_SERVER_ERROR" } },
      ]);
    });

    it("CONFLICT on a write, and nothing written", async () => {
      const tenant = freshTenant();
      await stored(tenant);
      const request = {
        body: { query: unseen(STORE), variables: { input: { sessionId: "s1", expectedVersion: 7 } } },
        headers: caller(tenant),
      };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.body.errors?.map((e) => e.extensions?.code)).toEqual(["CONFLICT"]);
      const read = await production.post({ query: READ, variables: { sessionId: "s1" } }, caller(tenant));
      expect(read.body.data?.sessionContext).toMatchObject({ version: 1 });
    });

    it("a bad input caught by a resolver, with the stack trace in development", async () => {
      const request = {
        body: { query: unseen(READ), variables: { sessionId: "x".repeat(300) } },
        headers: gatewayHeaders(freshTenant(), "alice"),
      };

      const { first, second, secondByLane } = await twice(development, request);

      expect(secondByLane).toBe(1);
      const withoutStack = (answer: Answer) => ({
        ...answer,
        text: undefined,
        body: {
          ...answer.body,
          errors: answer.body.errors?.map((e) => ({ ...e, extensions: { ...e.extensions, stacktrace: undefined } })),
        },
      });
      expect(withoutStack(second)).toEqual(withoutStack(first));
      expect(second.body.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
      expect(second.body.errors?.[0].extensions?.field).toBe("sessionId");
      expect(second.body.errors?.[0].extensions?.stacktrace).toEqual(expect.any(Array));
    });

    it.each([
      ["*/*", "application/json; charset=utf-8"],
      ["application/json", "application/json; charset=utf-8"],
      ["application/graphql-response+json", "application/graphql-response+json; charset=utf-8"],
      ["application/graphql-response+json,application/json;q=0.9", "application/graphql-response+json; charset=utf-8"],
      ["application/json;q=0.5, application/graphql-response+json", "application/graphql-response+json; charset=utf-8"],
      ["text/html;q=0.9, application/json;q=0.1", "application/json; charset=utf-8"],
    ])("with accept: %s, the content type Apollo negotiates", async (accept, contentType) => {
      const request = {
        body: { query: unseen(READ), variables: { sessionId: "s1" } },
        headers: { ...caller(freshTenant()), accept },
      };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(1);
      expect(second).toEqual(first);
      expect(second.contentType).toBe(contentType);
    });
  });

  it("runs writes: each merge is applied once, in order", async () => {
    const tenant = freshTenant();
    const merge = (n: number) => ({
      body: { query: MERGE_ONCE, variables: { input: { sessionId: "m", interruptedQueries: [`q${n}`] } } },
      headers: caller(tenant),
    });
    const MERGE_ONCE = unseen(MERGE);

    const { first, second, secondByLane } = await twice(production, merge(1), merge(2));

    expect(secondByLane).toBe(1);
    expect(first.body.data?.mergeSessionContext).toMatchObject({ version: 1, interruptedQueries: ["q1"] });
    expect(second.body.data?.mergeSessionContext).toMatchObject({ version: 2, interruptedQueries: ["q1", "q2"] });
  });

  it("reports its operations to the latency metrics by name and type", async () => {
    const tenant = freshTenant();
    const name = `LaneRead${randomUUID().replaceAll("-", "")}`;
    const request = {
      body: { query: `query ${name} { sessionContext(sessionId: "s1") { version } }`, operationName: name },
      headers: caller(tenant),
    };

    const { secondByLane } = await twice(production, request);

    expect(secondByLane).toBe(1);
    const samples = await scrape(production);
    expect(
      valueOf(samples, "graphql_operation_duration_seconds_count", {
        operation_name: name,
        operation_type: "query",
        outcome: "ok",
      }),
    ).toBe(2);
  });

  describe("stands aside for Apollo", () => {
    it("when the federation router asks for a trace (ftv1)", async () => {
      const query = unseen(READ);
      const tenant = freshTenant();
      await twice(production, { body: { query, variables: { sessionId: "s1" } }, headers: caller(tenant) });
      const traced = {
        body: { query, variables: { sessionId: "s1" } },
        headers: { ...caller(tenant), "apollo-federation-include-trace": "ftv1" },
      };

      const { second, secondByLane } = await twice(production, traced);

      expect(secondByLane).toBe(0);
      expect(second.body.extensions?.ftv1).toEqual(expect.any(String));
    });

    it("when the accept header allows no JSON answer: Apollo's 406", async () => {
      const request = {
        body: { query: unseen(READ), variables: { sessionId: "s1" } },
        headers: { ...caller(freshTenant()), accept: "application/xml" },
      };

      const { first, second, secondByLane } = await twice(production, request);

      expect(secondByLane).toBe(0);
      expect(second).toEqual(first);
      expect(second.status).toBe(406);
    });

    it("when variables do not coerce: 400 BAD_USER_INPUT naming the field", async () => {
      const query = unseen(READ);
      const tenant = freshTenant();
      const good = { body: { query, variables: { sessionId: "s1" } }, headers: caller(tenant) };
      const bad = { body: { query, variables: { sessionId: { not: "an id" } } }, headers: caller(tenant) };
      await twice(production, good);

      const { second, secondByLane } = await twice(production, bad, bad);

      expect(secondByLane).toBe(0);
      expect(second.status).toBe(400);
      expect(second.body.errors?.map((e) => [e.extensions?.code, e.extensions?.field])).toEqual([
        ["BAD_USER_INPUT", "sessionId"],
      ]);
    });

    it("when a request would read more sessions than allowed", async () => {
      const query = unseen(ENTITIES);
      const tenant = freshTenant();
      const representations = (n: number) =>
        Array.from({ length: n }, (_, i) => ({ __typename: "SessionContext", userId: "alice", sessionId: `s${i}` }));
      const few = { body: { query, variables: { representations: representations(2) } }, headers: caller(tenant) };
      const many = { body: { query, variables: { representations: representations(101) } }, headers: caller(tenant) };

      const { second, secondByLane } = await twice(production, few, many);

      expect(secondByLane).toBe(0);
      expect(second.status).toBe(400);
      expect(second.body.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
      expect(second.body.data).toBeUndefined();
    });

    it("when the credentials are refused: 401 UNAUTHENTICATED", async () => {
      const query = unseen(READ);
      const good = { body: { query, variables: { sessionId: "s1" } }, headers: caller(freshTenant()) };
      const anonymous = { body: { query, variables: { sessionId: "s1" } }, headers: {} };

      const { second, secondByLane } = await twice(production, good, anonymous);

      expect(secondByLane).toBe(0);
      expect(second.status).toBe(401);
      expect(second.body.errors?.map((e) => e.extensions?.code)).toEqual(["UNAUTHENTICATED"]);
    });

    it("for a persisted-query hash", async () => {
      const query = unseen(READ);
      const persistedQuery = { version: 1, sha256Hash: createHash("sha256").update(query).digest("hex") };
      const headers = caller(freshTenant());
      await twice(production, {
        body: { query, variables: { sessionId: "s1" }, extensions: { persistedQuery } },
        headers,
      });
      const byHash = { body: { variables: { sessionId: "s1" }, extensions: { persistedQuery } }, headers };

      const { second, secondByLane } = await twice(production, byHash);

      expect(secondByLane).toBe(0);
      expect(second.status).toBe(200);
      expect(second.body).toEqual({ data: { sessionContext: null } });
    });
  });
});
