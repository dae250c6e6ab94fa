import { type RedisProcess } from "../helpers/redis-server";
import { startRedis } from "../helpers/redis-server";
import { parseMetrics, valueOf } from "../helpers/metrics";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/** "Latency and metrics": Prometheus text on /metrics after real operations, Server-Timing, and the logs. */

describe("metrics, Server-Timing and logs (Redis)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  const logs: Record<string, unknown>[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url, env: { LOG_LEVEL: "debug", SLOW_OPERATION_MS: "0" }, logs });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  const scrape = async () => {
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    return parseMetrics(await response.text());
  };

  describe("GET /metrics", () => {
    it("counts operations by name, type and outcome, and root-field resolvers and store commands", async () => {
      const headers = gatewayHeaders(freshTenant(), "u");
      const before = await scrape();
      await server.post(
        { query: `mutation StoreOne { storeSessionContext(input: {sessionId: "s"}) { version } }` },
        headers,
      );
      await server.post({ query: `query ReadOne { sessionContext(sessionId: "s") { version } }` }, headers);
      await server.post({ query: `query ReadOne { sessionContext(sessionId: "s") { version } }` }, headers);
      await server.post({ query: `query BadOne { sessionContext(sessionId: "") { version } }` }, headers);
      const after = await scrape();

      const delta = (name: string, labels: Record<string, string>) =>
        valueOf(after, name, labels) - valueOf(before, name, labels);
      const operations = "graphql_operation_duration_seconds_count";
      expect(delta(operations, { operation_name: "StoreOne", operation_type: "mutation", outcome: "ok" })).toBe(1);
      expect(delta(operations, { operation_name: "ReadOne", operation_type: "query", outcome: "ok" })).toBe(2);
      expect(delta(operations, { operation_name: "BadOne", operation_type: "query", outcome: "error" })).toBe(1);
      expect(
        delta("graphql_resolver_duration_seconds_count", { parent_type: "Query", field_name: "sessionContext" }),
      ).toBe(3);
      expect(
        delta("graphql_resolver_duration_seconds_count", {
          parent_type: "Mutation",
          field_name: "storeSessionContext",
        }),
      ).toBe(1);
      expect(delta("session_store_command_duration_seconds_count", { command: "store" })).toBe(1);
      expect(delta("session_store_command_duration_seconds_count", { command: "get_many" })).toBe(2);
      expect(delta("graphql_errors_total", { code: "BAD_USER_INPUT" })).toBe(1);
      // Histogram buckets are cumulative and end at +Inf = count.
      const readBuckets = after.filter(
        (s) => s.name === "graphql_operation_duration_seconds_bucket" && s.labels.operation_name === "ReadOne",
      );
      expect(readBuckets.find((s) => s.labels.le === "+Inf")?.value).toBe(
        valueOf(after, operations, { operation_name: "ReadOne" }),
      );
    });

    it("counts refused credentials as UNAUTHENTICATED and keeps Node's process metrics", async () => {
      const before = await scrape();
      const refused = await server.post({ query: '{ sessionContext(sessionId: "s") { version } }' });
      expect(refused.status).toBe(401);
      const after = await scrape();
      expect(
        valueOf(after, "graphql_errors_total", { code: "UNAUTHENTICATED" }) -
          valueOf(before, "graphql_errors_total", { code: "UNAUTHENTICATED" }),
      ).toBe(1);
      expect(after.some((s) => s.name === "process_cpu_user_seconds_total")).toBe(true);
      expect(after.some((s) => s.name === "nodejs_eventloop_lag_seconds")).toBe(true);
      expect(after.some((s) => s.name === "graphql_requests_in_flight")).toBe(true);
    });

    it("keeps at most 200 client-chosen operation names as label values; the rest count as other", async () => {
      const headers = gatewayHeaders(freshTenant(), "u");
      for (let i = 0; i < 210; i++) await server.post({ query: `query Op${i} { __typename }` }, headers);
      const samples = await scrape();
      const names = new Set(
        samples
          .filter((s) => s.name === "graphql_operation_duration_seconds_count")
          .map((s) => s.labels.operation_name),
      );
      expect(names.has("other")).toBe(true);
      expect([...names].filter((n) => n !== "other" && n !== "anonymous").length).toBe(200);
    });
  });

  describe("Server-Timing", () => {
    it("is on every /graphql response, with total and store time; errors included", async () => {
      const ok = await server.post(
        { query: `{ sessionContext(sessionId: "s") { version } }` },
        gatewayHeaders(freshTenant(), "u"),
      );
      expect(ok.headers.get("server-timing")).toMatch(/^total;dur=\d+(\.\d+)?, store;dur=\d+(\.\d+)?$/);
      const unauthenticated = await server.post({ query: "{ __typename }" });
      expect(unauthenticated.status).toBe(401);
      expect(unauthenticated.headers.get("server-timing")).toMatch(/^total;dur=\d+(\.\d+)?/);
      const badJson = await fetch(`${server.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{",
      });
      expect(badJson.status).toBe(400);
      expect(badJson.headers.get("server-timing")).toMatch(/^total;dur=\d+(\.\d+)?$/);
    });
  });

  describe("logs", () => {
    it("logs a slow operation at warn with request id, tenant, operation name and duration, never payloads or tokens", async () => {
      const tenant = freshTenant();
      const secret = `secret-payload-${tenant}`;
      const requestId = `req-${Date.now()}`;
      await server.post(
        {
          query: `mutation Secretive($i: SessionContextInput!) { mergeSessionContext(input: $i) { version } }`,
          variables: { i: { sessionId: "s", conversationState: { note: secret } } },
        },
        { ...gatewayHeaders(tenant, "u"), "x-request-id": requestId, authorization: `Bearer ${secret}-token` },
      );
      const line = logs.find((l) => l.msg === "slow operation" && l.requestId === requestId);
      expect(line).toMatchObject({ level: "warn", tenantId: tenant, operationName: "Secretive" });
      expect(typeof line?.durationMs).toBe("number");
      expect(JSON.stringify(logs)).not.toContain(secret);
    });

    it("logs store trouble as a warning with the request id", async () => {
      await redis.kill();
      try {
        const requestId = `down-${Date.now()}`;
        const response = await server.post(
          { query: `{ sessionContext(sessionId: "s") { version } }` },
          { ...gatewayHeaders(freshTenant(), "u"), "x-request-id": requestId },
        );
        expect(response.body.errors?.[0].extensions?.code).toBe("SERVICE_UNAVAILABLE");
        expect(logs.find((l) => l.msg === "session store unavailable" && l.requestId === requestId)).toMatchObject({
          level: "warn",
        });
      } finally {
        await redis.restart();
      }
    });
  });
});

describe("one debug line per operation (embedded store)", () => {
  it("logs each operation at debug with its outcome when it is not slow", async () => {
    const logs: Record<string, unknown>[] = [];
    const server = await startTestServer({ env: { LOG_LEVEL: "debug", SLOW_OPERATION_MS: "60000" }, logs });
    try {
      const requestId = `dbg-${Date.now()}`;
      await server.post(
        { query: `query Fast { __typename }` },
        { ...gatewayHeaders("t", "u"), "x-request-id": requestId },
      );
      expect(logs.find((l) => l.msg === "operation" && l.requestId === requestId)).toMatchObject({
        level: "debug",
        tenantId: "t",
        operationName: "Fast",
        outcome: "ok",
      });
      expect(logs.some((l) => l.msg === "slow operation")).toBe(false);
    } finally {
      await server.close();
    }
  });
});
