import { once } from "node:events";
import { Redis } from "ioredis";
import { MERGE, READ, timed } from "../helpers/api";
import { onlyError, sampleMax, storedSession } from "../helpers/faults";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

// The server's command timeout is 1 s; the contract says "under ~2 s".
const FAIL_FAST_MS = 2000;
const BURST = 20;

async function ready(server: TestServer): Promise<number> {
  const response = await fetch(`${server.url}/health/ready`);
  await response.arrayBuffer();
  return response.status;
}

type Doc = { version: number; conversationState: Record<string, unknown> };

describe("fault: Redis slower than the command timeout", () => {
  let redis: RedisProcess;
  let server: TestServer;
  let slow: Redis;
  let probe: Redis;
  beforeAll(async () => {
    // DEBUG is off by default on redis-server 7; `local` allows it from loopback connections only.
    redis = await startRedis(["--enable-debug-command", "local"]);
    server = await startTestServer({ redisUrl: redis.url });
    // A client of its own for CLIENT PAUSE and DEBUG SLEEP: it is itself blocked by DEBUG SLEEP.
    slow = new Redis(redis.url);
    // Tells that Redis is asleep: its PING gets no answer within 100 ms.
    probe = new Redis(redis.url, { commandTimeout: 100 });
    for (const client of [slow, probe]) client.on("error", () => {}); // timeouts here are expected, not news
    // Connected, not pinged: on a loaded machine a PING may take longer than the probe's 100 ms even while awake.
    await Promise.all([slow, probe].map((client) => client.status === "ready" || once(client, "ready")));
  });
  afterAll(async () => {
    slow?.disconnect();
    probe?.disconnect();
    await server?.close();
    await redis?.stop();
  });

  /** Stores `s0`…`s<n-1>` for one user of a fresh tenant and returns who and what. */
  async function arrange(n: number) {
    const tenant = freshTenant();
    const alice = gatewayHeaders(tenant, "alice");
    const sessions = Array.from({ length: n }, (_, i) => `s${i}`);
    for (const sessionId of sessions) {
      const stored = await server.post(
        { query: MERGE, variables: { input: { sessionId, conversationState: { first: true } } } },
        alice,
      );
      expect(stored.body.errors).toBeUndefined();
    }
    return { tenant, alice, sessions };
  }

  /** Waits (bounded) until every one of the sessions' timed-out second merge has been applied. */
  function timedOutMergesLand(tenant: string, sessions: readonly string[], what: string) {
    return pollUntil(
      what,
      async () => {
        const docs = await Promise.all(sessions.map((s) => storedSession(redis.admin, tenant, "alice", s)));
        return docs.map((doc) => (JSON.parse(doc.document!) as Doc).version);
      },
      (versions) => versions.every((version) => version === 2),
      { timeoutMs: 5000 },
    );
  }

  function mergeLate(alice: Record<string, string>, sessionId: string) {
    return timed(() =>
      server.post({ query: MERGE, variables: { input: { sessionId, conversationState: { late: true } } } }, alice),
    );
  }

  it("CLIENT PAUSE WRITE: writes answer SERVICE_UNAVAILABLE with outcomeUnknown in time, reads meanwhile answer what is stored, and the timed-out writes land after the pause", async () => {
    const { tenant, alice, sessions } = await arrange(BURST);
    const before = await Promise.all(sessions.map((s) => storedSession(redis.admin, tenant, "alice", s)));

    await slow.client("PAUSE", 2500, "WRITE");
    const queue = sampleMax(() => server.redis!.commandQueue.length);
    const [writes, reads, readiness] = await Promise.all([
      Promise.all(sessions.map((sessionId) => mergeLate(alice, sessionId))),
      Promise.all(
        sessions.map((sessionId) => timed(() => server.post({ query: READ, variables: { sessionId } }, alice))),
      ),
      timed(() => ready(server)),
    ]);
    const maxQueue = queue.stop();

    for (const write of writes) {
      expect(onlyError(write.result)).toEqual({ code: "SERVICE_UNAVAILABLE", outcomeUnknown: true });
      expect(write.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    }
    // Reads have a connection of their own: no paused write is queued in front of them, and they answer what is
    // stored (the merges have not landed).
    for (const read of reads) {
      expect(read.result.body.errors).toBeUndefined();
      expect(read.result.body.data).toMatchObject({ sessionContext: { version: 1 } });
      expect(read.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    }
    expect([200, 503]).toContain(readiness.result);
    expect(readiness.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    // Timed-out writes stay in the client's queue until Redis answers them, but never more than were sent.
    expect(maxQueue).toBeLessThanOrEqual(2 * BURST + 1);

    // As documented, a write that timed out can still land: here every one does once the pause ends, exactly
    // once (the client never resends), with its index entries.
    await timedOutMergesLand(tenant, sessions, "the timed-out merges land after the pause");
    for (const [i, sessionId] of sessions.entries()) {
      const after = await storedSession(redis.admin, tenant, "alice", sessionId);
      expect(JSON.parse(after.document!)).toMatchObject({ version: 2, conversationState: { first: true, late: true } });
      expect(Number(after.activity)).toBeGreaterThan(Number(before[i].activity));
      expect(after.userSessions).toBe(after.activity);
    }
    await pollUntil(
      "the client's queue drains",
      () => server.redis!.commandQueue.length,
      (queued) => queued === 0,
      { timeoutMs: 10_000 },
    );
    const next = await server.post(
      { query: MERGE, variables: { input: { sessionId: "s0", conversationState: { next: 1 } } } },
      alice,
    );
    expect(next.body.data).toMatchObject({ mergeSessionContext: { version: 3 } });
  });

  it("DEBUG SLEEP: reads and writes answer SERVICE_UNAVAILABLE in time (writes with outcomeUnknown), readiness 503, and it recovers by itself", async () => {
    const { tenant, alice, sessions } = await arrange(BURST);

    // The reply comes only when Redis wakes up: it resolves after the sleep, not now.
    const sleeping = slow.debug("SLEEP", 3);
    await pollUntil(
      "Redis is asleep",
      () =>
        probe.ping().then(
          () => false,
          () => true,
        ),
      { timeoutMs: 10_000 },
    );
    const queue = sampleMax(() => server.redis!.commandQueue.length);
    const [writes, reads, readiness] = await Promise.all([
      Promise.all(sessions.map((sessionId) => mergeLate(alice, sessionId))),
      Promise.all(
        sessions.map((sessionId) => timed(() => server.post({ query: READ, variables: { sessionId } }, alice))),
      ),
      timed(() => ready(server)),
    ]);
    const maxQueue = queue.stop();
    await sleeping;

    for (const write of writes) {
      expect(onlyError(write.result)).toEqual({ code: "SERVICE_UNAVAILABLE", outcomeUnknown: true });
      expect(write.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    }
    for (const read of reads) {
      expect(onlyError(read.result)).toEqual({ code: "SERVICE_UNAVAILABLE", outcomeUnknown: false });
      expect(read.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    }
    expect(readiness.result).toBe(503);
    expect(readiness.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(maxQueue).toBeLessThanOrEqual(2 * BURST + 2);

    // Redis read the timed-out commands before it fell asleep or right after: the merges are applied then.
    await timedOutMergesLand(tenant, sessions, "the timed-out merges land after the sleep");
    await pollUntil(
      "/health/ready answers 200 again",
      () => ready(server),
      (status) => status === 200,
      { timeoutMs: 10_000 },
    );
    const read = await server.post({ query: READ, variables: { sessionId: "s1" } }, alice);
    expect(read.body.data).toMatchObject({ sessionContext: { version: 2, conversationState: { late: true } } });
  });
});
