import { randomUUID } from "node:crypto";
import { SESSION_FIELDS, STORE } from "../helpers/api";
import { pollUntil } from "../helpers/poll";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";

/**
 * The real server process on a Redis Cluster (REDIS_CLUSTER_NODES): a request's batched reads are one MGET on the
 * node that owns the tenant's slot, every key of a tenant shares that slot, readiness means "the whole cluster
 * serves", and when a master dies the server follows the replica the cluster promotes.
 */

describe("The server on a Redis Cluster", () => {
  let cluster: RedisClusterProcess;
  let server: ServerProcess;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    server = await startServerProcess({ REDIS_CLUSTER_NODES: cluster.nodesVariable, AUTH_MODE: "gateway" });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await cluster?.stop();
    removeBuild();
  });

  const post = async (tenant: string, query: string, variables: Record<string, unknown> = {}, roles = "") => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tenant-id": tenant, "x-user-id": "u1", "x-roles": roles },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(5000),
    });
    return (await response.json()) as { data?: Record<string, unknown>; errors?: { extensions?: { code?: string } }[] };
  };
  const ready = async () => (await fetch(`${server.url}/health/ready`, { signal: AbortSignal.timeout(5000) })).status;
  const calls = async (port: number) => {
    const stats: Record<string, number> = {};
    for (const m of (await cluster.node(port).info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
      stats[m[1]] = Number(m[2]);
    return stats;
  };
  const masterPorts = async () => (await cluster.topology()).filter((n) => n.role === "master").map((n) => n.port);

  it("is ready once the cluster serves", async () => {
    expect(await ready()).toBe(200);
  });

  it("reads many sessions of a request in one MGET on the node that owns the tenant's slot", async () => {
    const tenant = `t-${randomUUID()}`;
    for (let i = 0; i < 5; i++) {
      const stored = await post(tenant, STORE, { input: { sessionId: `s${i}`, conversationState: { i } } });
      expect(stored.errors).toBeUndefined();
    }
    const slot = Number(await cluster.admin.cluster("KEYSLOT", `tenant:{${tenant}}:settings`));
    const owner = await cluster.ownerOf(slot);
    const masters = await masterPorts();
    const before = await Promise.all(masters.map(calls));

    const aliases = [0, 1, 2, 3, 4, 9].map((i) => `s${i}: sessionContext(sessionId: "s${i}") { ${SESSION_FIELDS} }`);
    const body = await post(tenant, `{ ${aliases.join("\n")} }`);

    const after = await Promise.all(masters.map(calls));
    expect(body.errors).toBeUndefined();
    expect(
      Object.values(body.data!).map(
        (s) => (s as { conversationState: { i: number } } | null)?.conversationState.i ?? null,
      ),
    ).toEqual([0, 1, 2, 3, 4, null]);
    masters.forEach((port, m) => {
      const mgets = (after[m].mget ?? 0) - (before[m].mget ?? 0);
      expect(mgets).toBe(port === owner ? 1 : 0);
    });
    // Every key of the tenant (sessions, indexes, settings) is in that one slot, on that one node.
    const keys = (await cluster.node(owner).call("CLUSTER", "GETKEYSINSLOT", slot, 1000)) as string[];
    expect(keys.filter((key) => key.startsWith(`tenant:{${tenant}}:`)).length).toBeGreaterThanOrEqual(5 + 4 + 1);
  });

  it("lists, purges and erases a tenant's sessions on its shard", async () => {
    const tenant = `t-${randomUUID()}`;
    for (let i = 0; i < 3; i++) await post(tenant, STORE, { input: { sessionId: `s${i}` } });

    const listed = await post(
      tenant,
      "{ userSessions(first: 2) { totalCount pageInfo { hasNextPage } edges { node { sessionId } } } }",
    );
    const purged = await post(tenant, "mutation { purgeOrphans(olderThanSeconds: 3600) { purgedCount } }", {}, "admin");
    const erased = await post(tenant, "mutation { deleteUserSessions }");

    expect(listed.data).toEqual({
      userSessions: {
        totalCount: 3,
        pageInfo: { hasNextPage: true },
        edges: [{ node: { sessionId: "s2" } }, { node: { sessionId: "s1" } }],
      },
    });
    expect(purged.data).toEqual({ purgeOrphans: { purgedCount: 0 } });
    expect(erased.data).toEqual({ deleteUserSessions: 3 });
  });

  it("says not ready while a master is down, and serves again once the cluster promoted its replica", async () => {
    const tenant = `t-${randomUUID()}`;
    const slot = Number(await cluster.admin.cluster("KEYSLOT", `tenant:{${tenant}}:settings`));
    expect((await post(tenant, STORE, { input: { sessionId: "s1" } })).errors).toBeUndefined();
    const victim = await cluster.ownerOf(slot);
    const survivor = cluster.ports.find((port) => port !== victim)!;

    const killedAt = Date.now();
    await cluster.kill(victim);

    // Until the failover, the tenant's writes fail fast with SERVICE_UNAVAILABLE and readiness says 503.
    await pollUntil("readiness reports the dead master", ready, (status) => status === 503, { timeoutMs: 5000 });
    const during = Date.now();
    const failed = await post(tenant, STORE, { input: { sessionId: "s2" } });
    expect(Date.now() - during).toBeLessThan(2500);
    if (failed.errors) expect(failed.errors.map((e) => e.extensions?.code)).toEqual(["SERVICE_UNAVAILABLE"]);

    // The replica takes over (cluster-node-timeout 2 s + election); the server finds it by itself.
    await cluster.waitUntilOk(
      20_000,
      cluster.ports.filter((port) => port !== victim),
    );
    await pollUntil(
      "the server writes again after the failover",
      async () => {
        const status = await ready();
        const write = await post(tenant, STORE, { input: { sessionId: "s3" } });
        return { ready: status, writeErrors: write.errors?.map((e) => e.extensions?.code) };
      },
      (last) => last.ready === 200 && !last.writeErrors,
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const recoveredMs = Date.now() - killedAt;
    process.stdout.write(`cluster master ${victim} killed: served again after ${recoveredMs} ms\n`);
    expect(recoveredMs).toBeLessThan(30_000);
    expect(await cluster.ownerOf(slot, survivor)).not.toBe(victim);
    const read = await post(tenant, `{ sessionContext(sessionId: "s1") { sessionId } }`);
    expect(read.data).toEqual({ sessionContext: { sessionId: "s1" } });
  }, 60_000);
});
