import { Redis } from "ioredis";
import { errorCodes, READ, sessionKeyOf, STORE, timed } from "../helpers/api";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";

// The contract's "under ~2 s", with room for a loaded CI machine.
const FAIL_FAST_MS = 2500;

async function health(server: TestServer, path: "/health/live" | "/health/ready"): Promise<number> {
  const response = await fetch(`${server.url}${path}`);
  await response.arrayBuffer();
  return response.status;
}

describe("store down: Redis killed", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  it("fails reads and writes fast with SERVICE_UNAVAILABLE, stays up, and recovers by itself after a restart", async () => {
    const tenant = freshTenant();
    const alice = gatewayHeaders(tenant, "alice");
    const stored = await server.post({ query: STORE, variables: { input: { sessionId: "s1" } } }, alice);
    expect(stored.body.errors).toBeUndefined();

    await redis.kill();
    const read = await timed(() => server.post({ query: READ, variables: { sessionId: "s1" } }, alice));
    const write = await timed(() => server.post({ query: STORE, variables: { input: { sessionId: "s2" } } }, alice));
    const live = await health(server, "/health/live");
    const ready = await timed(() => health(server, "/health/ready"));

    expect(errorCodes(read.result)).toEqual(["SERVICE_UNAVAILABLE"]);
    expect(read.result.body.data).toEqual({ sessionContext: null });
    expect(read.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(errorCodes(write.result)).toEqual(["SERVICE_UNAVAILABLE"]);
    expect(write.result.body.errors?.[0].extensions?.outcomeUnknown).toBe(false); // refused before it was sent
    expect(write.result.body.data).toBeNull();
    expect(write.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(live).toBe(200);
    expect(ready.result).toBe(503);
    expect(ready.elapsedMs).toBeLessThan(FAIL_FAST_MS);

    await redis.restart();
    await pollUntil(
      "/health/ready answers 200 after Redis is back",
      () => health(server, "/health/ready"),
      (status) => status === 200,
      { timeoutMs: 10_000 },
    );
    const writeAfter = await server.post(
      { query: STORE, variables: { input: { sessionId: "s3", conversationState: { back: true } } } },
      alice,
    );
    const readAfter = await server.post({ query: READ, variables: { sessionId: "s3" } }, alice);

    expect(writeAfter.body.errors).toBeUndefined();
    expect(writeAfter.body.data).toMatchObject({ storeSessionContext: { version: 1 } });
    expect(readAfter.body.data).toMatchObject({ sessionContext: { conversationState: { back: true }, version: 1 } });
  });

  it("keeps answering `_service { sdl }` while Redis is down", async () => {
    await redis.kill();

    const response = await server.post({ query: "{ _service { sdl } }" });

    expect(response.status).toBe(200);
    expect(response.body.errors).toBeUndefined();
    await redis.restart();
    await pollUntil(
      "/health/ready answers 200 after Redis is back",
      () => health(server, "/health/ready"),
      (status) => status === 200,
      { timeoutMs: 10_000 },
    );
  });
});

describe("store down: Redis paused (CLIENT PAUSE 3000 ALL)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  let pauser: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
    pauser = new Redis(redis.url);
  });
  afterAll(async () => {
    pauser.disconnect();
    await server.close();
    await redis.stop();
  });

  it("fails a write fast with SERVICE_UNAVAILABLE and outcomeUnknown, a read with SERVICE_UNAVAILABLE", async () => {
    const tenant = freshTenant();
    const alice = gatewayHeaders(tenant, "alice");
    await server.post({ query: STORE, variables: { input: { sessionId: "s0" } } }, alice);

    await pauser.client("PAUSE", 3000, "ALL");
    // All at once, so that every one of them meets the 3 s pause.
    const [write, read, ready] = await Promise.all([
      timed(() =>
        server.post(
          { query: STORE, variables: { input: { sessionId: "s1", conversationState: { late: true } } } },
          alice,
        ),
      ),
      timed(() => server.post({ query: READ, variables: { sessionId: "s0" } }, alice)),
      health(server, "/health/ready"),
    ]);

    expect(errorCodes(write.result)).toEqual(["SERVICE_UNAVAILABLE"]);
    expect(write.result.body.errors?.[0].extensions?.outcomeUnknown).toBe(true);
    expect(write.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(errorCodes(read.result)).toEqual(["SERVICE_UNAVAILABLE"]);
    expect(read.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(ready).toBe(503);

    // Why the outcome is unknown: the write was sent, and Redis applies it once the pause ends.
    const key = sessionKeyOf(tenant, "alice", "s1");
    await pollUntil("the timed-out write lands after the pause", async () => (await redis.admin.get(key)) !== null, {
      timeoutMs: 10_000,
    });
    await pollUntil(
      "/health/ready answers 200 after the pause",
      () => health(server, "/health/ready"),
      (status) => status === 200,
      { timeoutMs: 10_000 },
    );
    const after = await server.post({ query: READ, variables: { sessionId: "s1" } }, alice);
    expect(after.body.data).toMatchObject({ sessionContext: { version: 1, conversationState: { late: true } } });
  });
});
