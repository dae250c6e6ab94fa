import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { createLogger } from "../../src/logger";
import { createRedisBackend } from "../../src/store/backend";
import { createRedisClient, whenReady, type RedisSecurity } from "../../src/store/redis/redis-client";
import { pollUntil } from "../helpers/poll";
import { aclDenials, createLeastPrivilegeUser, runEveryStoreOperation } from "../helpers/managed-redis";
import { startRedisSentinel, type RedisSentinelProcess } from "../helpers/redis-sentinel";
import { makeTestCertificates, type TestCertificates } from "../helpers/tls";

/**
 * Sentinel-managed Redis as a managed service runs it: TLS only everywhere (the data nodes, replication, the
 * Sentinels and their links to the nodes and to each other), a password on the data nodes (the Sentinels are given
 * it), a password on the Sentinels, the service's user with the README's rule on both data nodes (ACL users are per
 * node, not replicated) and its own user with the README's Sentinel rule on every Sentinel. The client
 * (REDIS_SENTINELS with REDIS_TLS, REDIS_TLS_CA_FILE, REDIS_USERNAME, REDIS_PASSWORD, REDIS_SENTINEL_USERNAME,
 * REDIS_SENTINEL_PASSWORD) serves every store operation as those users and nothing is refused; a Sentinel refusing
 * the credentials is SERVICE_UNAVAILABLE and one log line, until the Sentinel user is fixed.
 */

type Log = Record<string, unknown>;

describe("Sentinel over TLS, with the least-privilege ACL users on the data nodes and on the Sentinels", () => {
  const password = `scs-${randomUUID()}`;
  const sentinelPassword = `scs-sentinel-${randomUUID()}`;
  let certificates: TestCertificates;
  let sentinel: RedisSentinelProcess;
  const clients: Redis[] = [];

  /** A Sentinel-managed client as the server builds it from its configuration; its log lines go to `logs`. */
  const connect = (security: RedisSecurity, logs: Log[] = []) => {
    const logger = createLogger("info", { write: (line: string) => void logs.push(JSON.parse(line)) });
    const sentinels = sentinel.sentinelPorts.map((port) => ({ host: "127.0.0.1", port }));
    const client = createRedisClient({ sentinels, sentinelName: sentinel.name, security, logger }) as Redis;
    clients.push(client);
    return client;
  };
  const sentinelAdmins = () => sentinel.sentinelPorts.map((port) => sentinel.sentinel(port));
  const security = (sentinelSecret: string): RedisSecurity => ({
    username: "scs",
    password,
    tls: { ca: certificates.ca },
    sentinelUsername: "scs-sentinel",
    sentinelPassword: sentinelSecret,
  });

  beforeAll(async () => {
    certificates = makeTestCertificates();
    sentinel = await startRedisSentinel({
      tls: certificates,
      adminPassword: `admin-${randomUUID()}`,
      sentinelPassword: `sentinel-admin-${randomUUID()}`,
    });
    await createLeastPrivilegeUser(sentinel.dataPorts.map(sentinel.node), "scs", password);
    await createLeastPrivilegeUser(sentinelAdmins(), "scs-sentinel", sentinelPassword, "sentinel");
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await sentinel?.stop();
    certificates?.remove();
  });

  it("serves every store operation, and neither a data node nor a Sentinel refuses anything (ACL LOG)", async () => {
    const client = connect(security(sentinelPassword));
    expect(await whenReady(client, 10_000)).toBe(true);

    await runEveryStoreOperation(createRedisBackend(client));
    // The client listens for failovers on every Sentinel (SUBSCRIBE +switch-master) as its own user there.
    await pollUntil(
      "the client subscribed on every Sentinel",
      async () => {
        const lists = await Promise.all(sentinelAdmins().map((admin) => admin.client("LIST")));
        const subscribed = (line: string) => / sub=1 /.test(line) && / user=scs-sentinel\b/.test(line);
        return lists.every((list) => String(list).split("\n").some(subscribed));
      },
      { timeoutMs: 10_000 },
    );

    for (const admin of [...sentinel.dataPorts.map(sentinel.node), ...sentinelAdmins()])
      expect(await aclDenials(admin)).toEqual([]);
  });

  it("a Sentinel refusing the credentials: SERVICE_UNAVAILABLE and one log line, until the Sentinel user is fixed", async () => {
    const logs: Log[] = [];
    const wrong = `wrong-${randomUUID()}`;
    const client = connect(security(wrong), logs);
    let attempts = 0;
    client.on("error", () => attempts++);
    await pollUntil("three failed attempts", async () => attempts >= 3, { timeoutMs: 10_000 });

    await expect(createRedisBackend(client).sessions.ping()).rejects.toMatchObject({
      extensions: { code: "SERVICE_UNAVAILABLE" },
    });
    const problems = logs.filter((line) => line.event === "redis.error");
    expect(problems).toEqual([
      expect.objectContaining({ level: "error", problem: "sentinel-credentials", code: "WRONGPASS" }),
    ]);
    expect(problems[0].msg).toMatch(/^a Sentinel refused the credentials \(WRONGPASS\): check REDIS_SENTINEL_USERNAME/);

    // The Sentinels' user gets the password the server has: it connects by itself.
    for (const admin of sentinelAdmins()) await admin.call("ACL", "SETUSER", "scs-sentinel", "resetpass", `>${wrong}`);
    expect(await whenReady(client, 5000)).toBe(true);
    await createRedisBackend(client).sessions.ping();
    expect(JSON.stringify(logs)).not.toContain(wrong);
    expect(JSON.stringify(logs)).not.toContain(password);
  });
});
