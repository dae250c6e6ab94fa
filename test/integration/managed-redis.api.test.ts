import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import pino from "pino";
import { CleanupScheduler } from "../../src/cleanup/cleanup-scheduler";
import { errorCodes, MERGE, READ, STORE } from "../helpers/api";
import { pollUntil } from "../helpers/poll";
import { SESSION_CHANGED, sessionEvents, subscribeWs, wsClient, type SessionEvent } from "../helpers/live";
import { aclDenials, createLeastPrivilegeUser, startManagedRedis, type ManagedRedis } from "../helpers/managed-redis";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * The server on a managed Redis (the contract's "Running on managed Redis"): TLS only, a password on `default`, and
 * the service's own ACL user with exactly the README's least-privilege rule. Every operation through the API, the
 * persisted-query cache, readiness and the scheduled cleanup work as that user, and Redis refuses it nothing.
 * Then what clients and operators get when the credentials are refused, the CA is unknown, or a plain client meets
 * the TLS port: SERVICE_UNAVAILABLE, /health/ready 503, one log line naming the cause and never the password, and
 * serving again by itself once the ACL user is fixed.
 */

let managed: ManagedRedis;
beforeAll(async () => {
  managed = await startManagedRedis();
});
afterAll(() => managed?.stop());

type Log = Record<string, unknown>;

const ready = async (server: TestServer) => (await fetch(`${server.url}/health/ready`)).status;

describe("The API on Redis over TLS as the least-privilege ACL user", () => {
  let server: TestServer;
  const logs: Log[] = [];
  beforeAll(async () => {
    server = await startTestServer({ env: { ...managed.env, LOG_LEVEL: "info" }, logs });
  });
  afterAll(() => server?.close());

  it("serves every operation: writes, reads, listing, erasure, purge, settings, a persisted query, readiness", async () => {
    const tenant = freshTenant();
    const user = gatewayHeaders(tenant, "u1");
    const admin = gatewayHeaders(tenant, "ops", ["admin"]);
    const gql = async (query: string, variables: Record<string, unknown> = {}, headers = user) => {
      const response = await server.post({ query, variables }, headers);
      expect(response.body.errors).toBeUndefined();
      return response.body.data as Record<string, never>;
    };

    expect(
      (await gql(STORE, { input: { sessionId: "s1", conversationState: { step: 1 } } })).storeSessionContext,
    ).toMatchObject({ version: 1 });
    expect(
      (await gql(MERGE, { input: { sessionId: "s1", interruptedQueries: ["q"] } })).mergeSessionContext,
    ).toMatchObject({ version: 2, conversationState: { step: 1 }, interruptedQueries: ["q"] });
    for (const sessionId of ["s2", "s3"]) await gql(STORE, { input: { sessionId } });
    expect((await gql(READ, { sessionId: "s1" })).sessionContext).toMatchObject({ version: 2 });
    expect(
      await gql(`{ a: sessionContext(sessionId: "s2") { version } b: sessionContext(sessionId: "none") { version } }`),
    ).toEqual({ a: { version: 1 }, b: null });

    const page = `query($after: String) { userSessions(first: 2, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { sessionId } } } }`;
    const first = (await gql(page)).userSessions as { pageInfo: { endCursor: string }; totalCount: number };
    expect(first).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: true } });
    expect((await gql(page, { after: first.pageInfo.endCursor })).userSessions).toMatchObject({
      edges: [{ node: { sessionId: "s1" } }],
      pageInfo: { hasNextPage: false },
    });
    expect(await gql(`mutation { deleteSessionContext(sessionId: "s3") }`)).toEqual({ deleteSessionContext: true });

    expect(
      await gql(
        `mutation { updateTenantSettings(input: { orphanThresholdSeconds: 3600 }) { orphanThresholdSeconds } }`,
        {},
        admin,
      ),
    ).toEqual({ updateTenantSettings: { orphanThresholdSeconds: 3600 } });
    expect((await gql(`{ tenantSettings { orphanThresholdSeconds } }`, {}, admin)).tenantSettings).toEqual({
      orphanThresholdSeconds: 3600,
    });
    expect(await gql(`mutation { purgeOrphans(olderThanSeconds: 3600) { purgedCount } }`, {}, admin)).toEqual({
      purgeOrphans: { purgedCount: 0 },
    });
    expect(await gql(`mutation { deleteUserSessions }`)).toEqual({ deleteUserSessions: 2 });

    const query = `query Persisted($id: ID!) { sessionContext(sessionId: $id) { version } }`;
    const extensions = { persistedQuery: { version: 1, sha256Hash: createHash("sha256").update(query).digest("hex") } };
    const unknown = await server.post({ variables: { id: "s1" }, extensions } as never, user);
    expect(errorCodes(unknown)).toEqual(["PERSISTED_QUERY_NOT_FOUND"]);
    expect(
      (await server.post({ query, variables: { id: "s1" }, extensions } as never, user)).body.errors,
    ).toBeUndefined();
    expect((await server.post({ variables: { id: "s1" }, extensions } as never, user)).body).toEqual({
      data: { sessionContext: null },
    });

    expect(await ready(server)).toBe(200);
  });

  it("delivers live updates: the change feed's own connection is TLS and the ACL user too", async () => {
    const user = gatewayHeaders(freshTenant(), "u1");
    const client = wsClient(server.url, { headers: user });
    try {
      const received = subscribeWs<{ sessionContextChanged: SessionEvent }>(client, SESSION_CHANGED, {
        sessionId: "live",
        afterVersion: 0,
      });
      await server.post(
        { query: MERGE, variables: { input: { sessionId: "live", conversationState: { a: 1 } } } },
        user,
      );
      await received.next(1);
      await server.post(
        { query: MERGE, variables: { input: { sessionId: "live", conversationState: { b: 2 } } } },
        user,
      );
      const events = sessionEvents(await received.next(2));
      expect(events.map((e) => [e.version, e.resync])).toEqual([
        [1, false],
        [2, false],
      ]);
    } finally {
      await client.dispose();
    }
  });

  it("claims and runs a tenant's scheduled cleanup", async () => {
    const tenant = freshTenant();
    const admin = gatewayHeaders(tenant, "ops", ["admin"]);
    await server.post({ query: STORE, variables: { input: { sessionId: "s" } } }, gatewayHeaders(tenant, "u"));
    const interval = `mutation { updateTenantSettings(input: { cleanupIntervalSeconds: 60 }) { nextCleanupAt } }`;
    expect((await server.post({ query: interval }, admin)).body.errors).toBeUndefined();
    const scheduler = new CleanupScheduler({ ...server.backend, logger: pino({ level: "silent" }), tickMs: 60_000 });
    // Due one interval after the change: move it to now instead of waiting a minute.
    await managed.redis.admin.zadd("scs:cleanup:schedule", Date.now() - 1000, tenant);

    expect(await scheduler.runDue()).toBeGreaterThanOrEqual(1);

    const settings = await server.post({ query: `{ tenantSettings { lastCleanupAt lastCleanupPurged } }` }, admin);
    expect(settings.body.data).toEqual({ tenantSettings: { lastCleanupAt: expect.any(String), lastCleanupPurged: 0 } });
  });

  // Last, after everything above ran as the ACL user.
  it("needed nothing the README's rule does not grant: Redis's ACL LOG is empty, and no log line has a secret", async () => {
    expect(await aclDenials(managed.redis.admin)).toEqual([]);
    expect(JSON.stringify(logs)).not.toContain(managed.password);
  });
});

describe("When Redis refuses the connection, clients get SERVICE_UNAVAILABLE and the log one line naming the cause", () => {
  /** Counts the client's reconnects: each follows one failed attempt. */
  const reconnects = (redis: Redis) => {
    let count = 0;
    redis.on("reconnecting", () => count++);
    return () => count;
  };
  const problems = (logs: Log[]) => logs.filter((line) => line.event === "redis.error");

  /** A read and a write answer SERVICE_UNAVAILABLE and /health/ready 503, with no secret in any answer. */
  async function expectUnavailable(server: TestServer, secrets: readonly string[]): Promise<void> {
    const headers = gatewayHeaders(freshTenant(), "u");
    const read = await server.post({ query: READ, variables: { sessionId: "s" } }, headers);
    const write = await server.post({ query: STORE, variables: { input: { sessionId: "s" } } }, headers);
    expect([errorCodes(read), errorCodes(write)]).toEqual([["SERVICE_UNAVAILABLE"], ["SERVICE_UNAVAILABLE"]]);
    expect(await ready(server)).toBe(503);
    for (const secret of secrets) expect(JSON.stringify([read.body, write.body])).not.toContain(secret);
  }

  it("refused credentials (WRONGPASS), then the ACL user fixed while the server runs: it serves again by itself", async () => {
    const admin = managed.redis.admin;
    const password = `rotated-${randomUUID()}`;
    const other = `other-${randomUUID()}`;
    await createLeastPrivilegeUser([admin], "scs-rotated", password);
    const logs: Log[] = [];
    const env = { ...managed.env, REDIS_URL: `rediss://scs-rotated:${password}@127.0.0.1:${managed.redis.port}` };
    const server = await startTestServer({ env: { ...env, LOG_LEVEL: "info" }, logs });
    try {
      const attempts = reconnects(server.redis!);
      // The password changed on Redis only (a rotation half done), and the server's connections were dropped.
      await admin.call("ACL", "SETUSER", "scs-rotated", "resetpass", `>${other}`);
      await admin.call("CLIENT", "KILL", "USER", "scs-rotated");
      await pollUntil("three failed attempts", async () => attempts() >= 3, { timeoutMs: 10_000 });

      await expectUnavailable(server, [password, other]);
      expect(problems(logs)).toEqual([
        expect.objectContaining({ level: "error", problem: "credentials", code: "WRONGPASS" }),
      ]);
      expect(problems(logs)[0].msg).toMatch(/^Redis refused the credentials \(WRONGPASS\): check REDIS_USERNAME/);

      await admin.call("ACL", "SETUSER", "scs-rotated", "resetpass", `>${password}`);
      await pollUntil(
        "the server serves again",
        async () => {
          const read = await server.post(
            { query: READ, variables: { sessionId: "s" } },
            gatewayHeaders(freshTenant(), "u"),
          );
          return errorCodes(read).length === 0 && (await ready(server)) === 200;
        },
        { timeoutMs: 10_000 },
      );
      expect(problems(logs)).toHaveLength(1);
      expect(logs.at(-1)).toMatchObject({ event: "redis.ready" });
      expect(JSON.stringify(logs)).not.toContain(password);
      expect(JSON.stringify(logs)).not.toContain(other);
    } finally {
      await server.close();
    }
  });

  it.each([
    [
      "no credentials (NOAUTH)",
      () => ({ REDIS_URL: `rediss://127.0.0.1:${managed.redis.port}`, REDIS_TLS_CA_FILE: managed.certificates.caFile }),
      { level: "error", problem: "credentials", code: "NOAUTH" },
      /^Redis refused the credentials \(NOAUTH\)/,
    ],
    [
      "a certificate from an unknown CA",
      () => ({ ...managed.env, REDIS_TLS_CA_FILE: managed.certificates.otherCaFile }),
      { level: "error", problem: "certificate", code: "SELF_SIGNED_CERT_IN_CHAIN" },
      /^Redis's TLS certificate is not trusted \(SELF_SIGNED_CERT_IN_CHAIN: .*REDIS_TLS_CA_FILE must hold the CA/,
    ],
    [
      "a plain client at the TLS port",
      () => ({ REDIS_URL: `redis://scs:${managed.password}@127.0.0.1:${managed.redis.port}` }),
      { level: "error", problem: "not-tls", code: "ECONNRESET" },
      /^Redis closed the connection before answering \(ECONNRESET\): if that port serves TLS only, use rediss:\/\//,
    ],
  ])("%s", async (_what, env, expected, message) => {
    const logs: Log[] = [];
    const server = await startTestServer({ env: { ...env(), LOG_LEVEL: "info" }, logs, redisMayFail: true });
    try {
      const attempts = reconnects(server.redis!);
      await pollUntil("three failed attempts", async () => attempts() >= 3, { timeoutMs: 10_000 });

      await expectUnavailable(server, [managed.password]);
      expect(problems(logs)).toEqual([expect.objectContaining(expected)]);
      expect(problems(logs)[0].msg).toMatch(message);
      expect(JSON.stringify(logs)).not.toContain(managed.password);
    } finally {
      await server.close();
    }
  });
});
