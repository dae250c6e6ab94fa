import { MERGE, READ } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * Each tenant's share of large requests (TENANT_LARGE_BYTES_PER_SECOND): a tenant's large requests beyond it are
 * answered before their body is read — 503, SERVICE_UNAVAILABLE with `retryable: true` and a Retry-After — and
 * nothing is written; its small requests, and every other tenant's, go on. Here a large request is one over 16 KiB
 * and the share is 1 KiB a second, so a tenant's bucket (the largest body, 1 MiB) empties after a few ~200 KB
 * requests and takes minutes to refill: nothing in the test depends on its timing.
 */
describe("Each tenant's share of large requests", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({
      redisUrl: redis.url,
      env: { AUTH_MODE: "gateway", TENANT_LARGE_BYTES_PER_SECOND: "1024" },
    });
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
  });

  /** A merge of ~200 KB (quotes, escaped), larger than TENANT_LARGE_REQUEST_BYTES: ~200 KB of request body. */
  const large = (sessionId: string, n: number) => ({
    query: MERGE,
    variables: { input: { sessionId, conversationState: { n, text: '"'.repeat(100_000) } } },
  });

  it("refuses a tenant's large requests beyond its share before reading them, retryable, while its small requests and other tenants go on", async () => {
    const noisy = freshTenant("noisy");
    const quiet = freshTenant("quiet");
    const as = (tenant: string) => gatewayHeaders(tenant, "u");

    let refused: Awaited<ReturnType<TestServer["post"]>> | undefined;
    let written = 0;
    for (let n = 1; n <= 10 && refused === undefined; n++) {
      const response = await server.post(large("s", n), as(noisy));
      if (response.status === 503) refused = response;
      else {
        expect(response.body.errors).toBeUndefined();
        written = n;
      }
    }

    expect(written).toBeGreaterThan(0); // a full bucket takes the first ones
    expect(refused?.body.errors).toEqual([
      expect.objectContaining({
        message: expect.stringContaining("TENANT_LARGE_BYTES_PER_SECOND"),
        extensions: { code: "SERVICE_UNAVAILABLE", outcomeUnknown: false, retryable: true },
      }),
    ]);
    expect(Number(refused?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Nothing of the refused merge was written.
    const read = await server.post({ query: READ, variables: { sessionId: "s" } }, as(noisy));
    expect(read.body.data?.sessionContext).toMatchObject({ version: written, conversationState: { n: written } });
    // The same tenant's small requests, and another tenant's large ones, go on.
    const small = await server.post(
      { query: MERGE, variables: { input: { sessionId: "t", conversationState: { a: 1 } } } },
      as(noisy),
    );
    expect(small.body.errors).toBeUndefined();
    const other = await server.post(large("s", 1), as(quiet));
    expect(other.status).toBe(200);
    expect(other.body.errors).toBeUndefined();
    // Counted.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^graphql_requests_refused_total\{reason="tenant_large_bytes"\} 1$/m);
  });

  it("lets a request that does not authenticate go on, to be refused as such", async () => {
    const response = await server.post(large("s", 1), { "x-user-id": "u" });

    expect(response.body.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });
});
