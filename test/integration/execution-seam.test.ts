import { randomUUID } from "node:crypto";
import { GraphQLError } from "graphql";
import type { OperationRule } from "../../src/execution/operation-rule";
import { MERGE, READ } from "../helpers/api";
import { parseMetrics, valueOf } from "../helpers/metrics";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * One seam for every way an operation runs: a rule registered once sees, and may refuse, the operations of Apollo's
 * pipeline and of the prepared lane alike. Each case sends the same request twice: Apollo serves the first, the
 * lane the second (where it may), and the extra rule must see the two the same way.
 */

interface Seen {
  path: string;
  operationName: string | null | undefined;
  operationType: string | undefined;
  codes: unknown[];
}

describe("the execution seam", () => {
  let redis: RedisProcess;
  let server: TestServer;
  const seen: Seen[] = [];
  const refusedCredentials: unknown[] = [];
  const observer: OperationRule = {
    name: "test-observer",
    observe:
      ({ path }) =>
      (end) =>
        void seen.push({
          path,
          operationName: end.operationName,
          operationType: end.operationType,
          codes: end.errors.map((error) => error.extensions.code),
        }),
    contextFailed: (error) => void refusedCredentials.push((error as GraphQLError).extensions.code),
  };
  const gate: OperationRule = {
    name: "test-gate",
    admit: ({ operation }) => {
      if (operation.name?.value === "Closed")
        throw new GraphQLError("closed for this test", { extensions: { code: "FORBIDDEN", http: { status: 403 } } });
    },
  };

  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url, extraRules: [observer, gate] });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  const servedByLane = async () =>
    valueOf(parseMetrics(await (await fetch(`${server.url}/metrics`)).text()), "graphql_prepared_lane_requests_total");

  /** Sends the request twice; what the observer saw of each, and how many the lane served. */
  const twice = async (
    body: { query: string; variables?: Record<string, unknown> },
    headers: Record<string, string>,
  ) => {
    const query = `${body.query}\n# ${randomUUID()}`; // a text nobody sent before: Apollo sees it first
    const before = await servedByLane();
    seen.length = 0;
    const first = await server.post({ ...body, query }, headers);
    const second = await server.post({ ...body, query }, headers);
    return { first, second, seen: [...seen], byLane: (await servedByLane()) - before };
  };

  it("sees a read on both paths with the same name, type and outcome", async () => {
    const tenant = freshTenant();
    const { seen: observed, byLane } = await twice(
      { query: READ, variables: { sessionId: "s1" } },
      gatewayHeaders(tenant, "u1"),
    );

    expect(byLane).toBe(1);
    expect(observed).toEqual([
      { path: "apollo", operationName: "Read", operationType: "query", codes: [] },
      { path: "prepared", operationName: "Read", operationType: "query", codes: [] },
    ]);
  });

  it("sees the same error codes on both paths (FORBIDDEN, CONFLICT)", async () => {
    const tenant = freshTenant();
    const forbidden = await twice(
      { query: READ, variables: { sessionId: "s1", userId: "someone-else" } },
      gatewayHeaders(tenant, "u1"),
    );
    const conflict = await twice(
      { query: MERGE, variables: { input: { sessionId: "s1", expectedVersion: 7 } } },
      gatewayHeaders(tenant, "u1"),
    );

    expect([forbidden.byLane, conflict.byLane]).toEqual([1, 1]);
    expect(forbidden.seen.map(({ path, codes }) => [path, codes])).toEqual([
      ["apollo", ["FORBIDDEN"]],
      ["prepared", ["FORBIDDEN"]],
    ]);
    expect(conflict.seen).toEqual([
      { path: "apollo", operationName: "Merge", operationType: "mutation", codes: ["CONFLICT"] },
      { path: "prepared", operationName: "Merge", operationType: "mutation", codes: ["CONFLICT"] },
    ]);
  });

  it("lets a rule refuse an operation on every path, before anything runs", async () => {
    const tenant = freshTenant();
    const closed = `mutation Closed($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;

    const {
      first,
      second,
      seen: observed,
      byLane,
    } = await twice({ query: closed, variables: { input: { sessionId: "s1" } } }, gatewayHeaders(tenant, "u1"));

    // The lane asks the same rules and leaves a refused operation to Apollo, which refuses it in its own words.
    expect(byLane).toBe(0);
    for (const response of [first, second]) {
      expect(response.status).toBe(403);
      expect(response.body.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
    }
    expect(observed.map(({ path, codes }) => [path, codes])).toEqual([
      ["apollo", ["FORBIDDEN"]],
      ["apollo", ["FORBIDDEN"]],
    ]);
    const stored = await server.post({ query: READ, variables: { sessionId: "s1" } }, gatewayHeaders(tenant, "u1"));
    expect(stored.body.data).toEqual({ sessionContext: null }); // nothing was written
  });

  it("hears of refused credentials, which start no operation", async () => {
    refusedCredentials.length = 0;
    const { seen: observed } = await twice({ query: READ, variables: { sessionId: "s1" } }, {});

    expect(refusedCredentials).toEqual(["UNAUTHENTICATED", "UNAUTHENTICATED"]);
    expect(observed).toEqual([]);
  });
});
