import type { Client } from "graphql-ws";
import { SESSION_CHANGED, sessionEvents, subscribeWs, wsClient, type SessionEvent } from "../helpers/live";
import { pollUntil } from "../helpers/poll";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant, gatewayHeaders, startTestServer } from "../helpers/test-server";

/**
 * Live updates across replicas: a write served by one server process reaches a subscriber connected to another
 * (Redis carries the fan-out; sharded pub/sub on a Cluster), and a subscriber that disconnects and comes back with
 * `afterVersion` sees every version exactly once — "no gap, no repeat" — while two processes write. A Redis restart
 * under a subscription ends in a resumed stream, never a silent stall.
 */

type Changed = { sessionContextChanged: SessionEvent };
const MERGE = `mutation M($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;
const SETTINGS = `mutation S($input: TenantSettingsInput!) { updateTenantSettings(input: $input) { historyDepth } }`;
const WRITES = 500;

async function post(url: string, headers: Record<string, string>, query: string, variables: Record<string, unknown>) {
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { errors?: unknown[] };
  if (body.errors) throw new Error(`${query.slice(0, 30)}…: ${JSON.stringify(body.errors)}`);
}

/**
 * Merges WRITES times, alternately through each server, while a subscriber takes the versions in legs of about 80:
 * after each leg it disconnects and subscribes again, through the other server, with `afterVersion` = the last
 * version it saw. Returns every version it was given, in order.
 */
async function versionsSeenAcrossReconnects(servers: readonly string[]): Promise<number[]> {
  const tenant = freshTenant();
  await post(servers[0], gatewayHeaders(tenant, "root", ["admin"]), SETTINGS, { input: { historyDepth: 1000 } });
  const headers = gatewayHeaders(tenant, "alice");
  const writing = (async () => {
    for (let i = 0; i < WRITES; i++) {
      await post(servers[i % 2], headers, MERGE, {
        input: { sessionId: "shared", conversationState: { [`k${i % 7}`]: i } },
      });
    }
  })();
  const seen: number[] = [];
  const resyncs: SessionEvent[] = [];
  for (let leg = 0; seen.length < WRITES && leg < 50; leg++) {
    const client: Client = wsClient(servers[leg % 2], { headers });
    try {
      const afterVersion = seen.length === 0 ? 0 : seen[seen.length - 1];
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "shared", afterVersion });
      const want = Math.min(80, WRITES - afterVersion);
      const events = sessionEvents(await received.next(want, 60_000));
      for (const event of events) {
        if (event.resync) resyncs.push(event);
        seen.push(event.version);
      }
      received.stop();
    } finally {
      await client.dispose();
    }
  }
  await writing;
  expect(resyncs).toEqual([]);
  return seen;
}

const oneToN = Array.from({ length: WRITES }, (_, i) => i + 1);

describe("live updates across two server processes on one Redis", () => {
  let redis: RedisProcess;
  let servers: ServerProcess[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    servers = await Promise.all([1, 2].map(() => startServerProcess({ REDIS_URL: redis.url, AUTH_MODE: "gateway" })));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await redis?.stop();
    removeBuild();
  });

  it("delivers a write served by one process to a subscriber of the other, live", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(servers[0].url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      await post(servers[1].url, headers, MERGE, { input: { sessionId: "s1", conversationState: { first: 1 } } });
      // Version 1 may come from the catch-up that starts the subscription; version 2 is written after it is there.
      await received.next(1);
      await post(servers[1].url, headers, MERGE, { input: { sessionId: "s1", conversationState: { second: 2 } } });
      const [, second] = sessionEvents(await received.next(2));
      expect([second.version, second.resync, second.change]).toEqual([2, false, { conversationState: { second: 2 } }]);
    } finally {
      await client.dispose();
    }
  });

  it("gives a subscriber that reconnects with afterVersion exactly versions 1..N, each once", async () => {
    expect(await versionsSeenAcrossReconnects(servers.map((s) => s.url))).toEqual(oneToN);
  }, 120_000);
});

describe("live updates across two server processes on a Redis Cluster", () => {
  let cluster: RedisClusterProcess;
  let servers: ServerProcess[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster();
    servers = await Promise.all(
      [1, 2].map(() => startServerProcess({ REDIS_CLUSTER_NODES: cluster.nodesVariable, AUTH_MODE: "gateway" })),
    );
  }, 90_000);
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await cluster?.stop();
    removeBuild();
  });

  it("gives a subscriber that reconnects with afterVersion exactly versions 1..N, each once", async () => {
    expect(await versionsSeenAcrossReconnects(servers.map((s) => s.url))).toEqual(oneToN);
  }, 120_000);

  // Last in this block: it kills a master.
  it("resumes a subscription when the master of the tenant's slot fails over", async () => {
    const tenant = freshTenant();
    const headers = gatewayHeaders(tenant, "alice");
    const client = wsClient(servers[0].url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      await post(servers[1].url, headers, MERGE, { input: { sessionId: "s1", conversationState: { before: true } } });
      await received.next(1);
      const slot = Number(await cluster.admin.cluster("KEYSLOT", `tenant:{${tenant}}:settings`));
      const victim = await cluster.ownerOf(slot);
      await cluster.kill(victim);
      await cluster.waitUntilOk(
        30_000,
        cluster.ports.filter((port) => port !== victim),
      );
      await pollUntil(
        "a write through the other process after the failover",
        async () =>
          post(servers[1].url, headers, MERGE, { input: { sessionId: "s1", conversationState: { after: true } } }).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      // The subscriber is brought to the state after the failover (live, or by a catch-up), or told it cannot be.
      for (let n = 2; ; n++) {
        const [latest] = (await received.next(n, 30_000)).slice(-1);
        if (latest.errors) {
          expect(latest.errors.map((e) => e.extensions?.code)).toEqual(["SERVICE_UNAVAILABLE"]);
          break;
        }
        if (latest.data?.sessionContextChanged.context?.conversationState.after === true) break;
      }
    } finally {
      await client.dispose();
    }
  }, 120_000);
});

describe("live updates through a Redis restart", () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  it("resumes the stream when Redis is back, with a resync for what the restart lost", async () => {
    const server = await startTestServer({ redisUrl: redis.url, redisMayFail: true });
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(server.url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      for (let i = 1; i <= 3; i++)
        await post(server.url, headers, MERGE, { input: { sessionId: "s1", conversationState: { before: i } } });
      await received.next(3);
      await redis.restart(); // keeps nothing: the session is gone
      // Written again once the server can write (it answers SERVICE_UNAVAILABLE until it has reconnected).
      for (let attempt = 0; ; attempt++) {
        try {
          await post(server.url, headers, MERGE, { input: { sessionId: "s1", conversationState: { after: true } } });
          break;
        } catch (error) {
          if (attempt >= 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100)); // paces retries of a refused write
        }
      }
      // The subscriber is brought to the new state: a resync, or DELETED (resync) then version 1 — never silence.
      let events: SessionEvent[] = [];
      for (let n = 4; ; n++) {
        events = sessionEvents(await received.next(n, 20_000));
        const last = events[events.length - 1];
        if (last.type === "UPDATED" && last.context?.conversationState.after === true) break;
      }
      const afterRestart = events.slice(3);
      const last = afterRestart[afterRestart.length - 1];
      expect(last.version).toBe(1);
      expect(afterRestart.slice(0, -1).every((e) => e.resync)).toBe(true);
      expect(afterRestart.length === 1 ? last.resync : !last.resync).toBe(true);
    } finally {
      await client.dispose();
      await server.close();
    }
  }, 60_000);
});
