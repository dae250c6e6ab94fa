import { randomUUID } from "node:crypto";
import type { Cluster } from "ioredis";
import { createLogger } from "../../src/logger";
import { createRedisBackend, type Backend } from "../../src/store/backend";
import { createRedisClient, whenReady, type RedisSecurity } from "../../src/store/redis/redis-client";
import { pollUntil } from "../helpers/poll";
import { aclDenials, createLeastPrivilegeUser, runEveryStoreOperation } from "../helpers/managed-redis";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { makeTestCertificates, type TestCertificates } from "../helpers/tls";

/**
 * Redis Cluster as a managed service runs it: TLS only (clients, the Cluster bus, replication), a password on every
 * node, and the service's user with the README's least-privilege rule on every node (ACL users are per node). The
 * Cluster client (REDIS_CLUSTER_NODES with REDIS_TLS, REDIS_TLS_CA_FILE, REDIS_USERNAME, REDIS_PASSWORD) serves
 * every store operation and readiness as that user, and no node refuses it anything; a refused password is
 * SERVICE_UNAVAILABLE and one log line.
 */

type Log = Record<string, unknown>;

describe("Redis Cluster over TLS as the least-privilege ACL user", () => {
  const password = `scs-${randomUUID()}`;
  let certificates: TestCertificates;
  let cluster: RedisClusterProcess;
  const clients: Cluster[] = [];

  /** A Cluster client as the server builds it from its configuration; its log lines go to `logs`. */
  const connect = (security: RedisSecurity, logs: Log[] = []) => {
    const logger = createLogger("info", { write: (line: string) => void logs.push(JSON.parse(line)) });
    const clusterNodes = cluster.ports.map((port) => ({ host: "127.0.0.1", port }));
    const client = createRedisClient({ clusterNodes, security, logger }) as Cluster;
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    certificates = makeTestCertificates();
    cluster = await startRedisCluster({ tls: certificates, adminPassword: `admin-${randomUUID()}` });
    await createLeastPrivilegeUser(cluster.ports.map(cluster.node), "scs", password);
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
    certificates?.remove();
  });

  it("serves every store operation and readiness, and no node refuses the user anything (ACL LOG)", async () => {
    const client = connect({ username: "scs", password, tls: { ca: certificates.ca } });
    expect(await whenReady(client, 10_000)).toBe(true);
    const backend: Backend = createRedisBackend(client);

    await runEveryStoreOperation(backend);

    for (const port of cluster.ports) expect(await aclDenials(cluster.node(port))).toEqual([]);
  });

  it("a node without the user: SERVICE_UNAVAILABLE for its tenants and one line naming it, until the user is there", async () => {
    const logs: Log[] = [];
    const client = connect({ username: "scs", password, tls: { ca: certificates.ca } }, logs);
    expect(await whenReady(client, 10_000)).toBe(true);
    const { sessions } = createRedisBackend(client);
    const node = (await cluster.topology()).find((n) => n.role === "master")!.port;
    const slotOf = async (tenant: string) => Number(await cluster.admin.cluster("KEYSLOT", `tenant:{${tenant}}:x`));
    let tenant = `t-${randomUUID()}`;
    while ((await cluster.ownerOf(await slotOf(tenant))) !== node) tenant = `t-${randomUUID()}`;
    const read = () => sessions.getMany(tenant, [{ userId: "u", sessionId: "s" }]);
    expect(await read()).toEqual([null]);

    // The user is gone from one master (ACL DELUSER also closes its connections there): the client reconnects.
    await cluster.node(node).call("ACL", "DELUSER", "scs");
    await pollUntil("the refusal is logged", async () => logs.some((line) => line.event === "redis.error"), {
      timeoutMs: 10_000,
    });

    await expect(read()).rejects.toMatchObject({ extensions: { code: "SERVICE_UNAVAILABLE" } });
    expect(logs.filter((line) => line.event === "redis.error")).toEqual([
      expect.objectContaining({ problem: "credentials", code: "WRONGPASS", node: `127.0.0.1:${node}` }),
    ]);

    await createLeastPrivilegeUser([cluster.node(node)], "scs", password);
    await pollUntil("the node serves again", async () => (await read())[0] === null, { timeoutMs: 10_000 });
    expect(logs.filter((line) => line.event === "redis.error")).toHaveLength(1);
  });

  it("a refused password: SERVICE_UNAVAILABLE and one log line without the password", async () => {
    const logs: Log[] = [];
    const wrong = `wrong-${randomUUID()}`;
    const client = connect({ username: "scs", password: wrong, tls: { ca: certificates.ca } }, logs);
    let attempts = 0;
    client.on("reconnecting", () => attempts++);
    await pollUntil("three failed attempts", async () => attempts >= 3, { timeoutMs: 10_000 });

    await expect(createRedisBackend(client).sessions.ping()).rejects.toMatchObject({
      extensions: { code: "SERVICE_UNAVAILABLE" },
    });
    const problems = logs.filter((line) => line.event === "redis.error");
    expect(problems).toEqual([expect.objectContaining({ level: "error", problem: "credentials", code: "WRONGPASS" })]);
    expect(JSON.stringify(logs)).not.toContain(wrong);
  });
});
