import { MERGE, READ, STORE, timed } from "../helpers/api";
import { onlyError, storedSession } from "../helpers/faults";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

const FAIL_FAST_MS = 2000;

describe("fault: Redis out of memory (maxmemory reached, noeviction)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
  });

  /**
   * Fills Redis with 2 MiB of filler keys, then sets maxmemory 1 MiB below what it uses: with noeviction, every
   * command that may add memory is refused from then on. (Filling exactly up to the limit is not enough: buffers
   * Redis frees moments later would make room for a small write again.)
   */
  async function fillRedis(): Promise<void> {
    await redis.admin.config("SET", "maxmemory-policy", "noeviction");
    for (let i = 0; i < 32; i++) await redis.admin.set(`filler:${i}`, "x".repeat(64 * 1024));
    const used = Number(/used_memory:(\d+)/.exec(await redis.admin.info("memory"))![1]);
    await redis.admin.config("SET", "maxmemory", String(used - 1024 * 1024));
    await expect(redis.admin.set("filler:tiny", "x")).rejects.toThrow(/^OOM/);
  }

  it("refuses stores and merges with SERVICE_UNAVAILABLE, writes nothing, keeps serving reads, and writes again once memory is there", async () => {
    const tenant = freshTenant();
    const alice = gatewayHeaders(tenant, "alice");
    const stored = await server.post(
      {
        query: STORE,
        variables: { input: { sessionId: "s1", conversationState: { step: 1 }, interruptedQueries: ["q1"] } },
      },
      alice,
    );
    expect(stored.body.errors).toBeUndefined();
    const before = await storedSession(redis.admin, tenant, "alice", "s1");

    await fillRedis();
    const merge = await timed(() =>
      server.post({ query: MERGE, variables: { input: { sessionId: "s1", conversationState: { step: 2 } } } }, alice),
    );
    const replace = await server.post(
      { query: STORE, variables: { input: { sessionId: "s1", conversationState: { replaced: true } } } },
      alice,
    );
    const create = await server.post({ query: STORE, variables: { input: { sessionId: "s2" } } }, alice);
    const read = await server.post({ query: READ, variables: { sessionId: "s1" } }, alice);
    const readiness = await fetch(`${server.url}/health/ready`);

    // Redis refused the script at its first write, so nothing ran: the outcome is known.
    for (const refused of [merge.result, replace, create]) {
      expect(onlyError(refused)).toEqual({ code: "SERVICE_UNAVAILABLE", outcomeUnknown: false });
      expect(refused.body.errors?.[0].message).toMatch(/OOM.*nothing was written/);
    }
    expect(merge.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(await storedSession(redis.admin, tenant, "alice", "s1")).toEqual(before);
    expect(await storedSession(redis.admin, tenant, "alice", "s2")).toEqual({
      document: null,
      activity: null,
      expiry: null,
      userSessions: null,
      userExpiry: null,
    });
    expect(read.body.errors).toBeUndefined();
    expect(read.body.data).toMatchObject({ sessionContext: { version: 1, conversationState: { step: 1 } } });
    expect(readiness.status).toBe(200); // Redis answers; only writes that need memory are refused

    await redis.admin.config("SET", "maxmemory", "0");
    await pollUntil(
      "merges work again once Redis has memory",
      async () => {
        const again = await server.post(
          { query: MERGE, variables: { input: { sessionId: "s1", conversationState: { step: 2 } } } },
          alice,
        );
        return again.body.errors;
      },
      (errors) => errors === undefined,
      { timeoutMs: 10_000 },
    );
    const after = await server.post({ query: READ, variables: { sessionId: "s1" } }, alice);
    expect(after.body.data).toMatchObject({
      sessionContext: { version: 2, conversationState: { step: 2 }, interruptedQueries: ["q1"] },
    });
  });
});
