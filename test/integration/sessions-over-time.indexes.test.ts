import { activityIndexKey, expiryIndexKey, userExpiryKey, userIndexKey } from "../../src/store/keys";
import { type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, type TestServer, useServerOnRedis } from "../helpers/test-server";

/** The Redis indexes behind cleanup and listing change in the same atomic step as each write, and only then. */
describe("indexes kept in the same atomic step as each write (Redis)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  const merge = (tenant: string, input: Record<string, unknown>) =>
    server.post(
      {
        query: `mutation($i: SessionContextInput!) { mergeSessionContext(input: $i) { lastUpdated } }`,
        variables: { i: input },
      },
      gatewayHeaders(tenant, "u"),
    );

  it("scores the session by its last write and its expiry, and leaves the scores alone when a write is refused", async () => {
    const tenant = freshTenant();
    const first = await merge(tenant, { sessionId: "s", ttlSeconds: 600 });
    const lastUpdated = Date.parse(
      (first.body.data as { mergeSessionContext: { lastUpdated: string } }).mergeSessionContext.lastUpdated,
    );
    const scores = () =>
      Promise.all([
        redis.admin.zscore(activityIndexKey(tenant), "u:s"),
        redis.admin.zscore(expiryIndexKey(tenant), "u:s"),
        redis.admin.zscore(userIndexKey(tenant, "u"), "u:s"),
        redis.admin.zscore(userExpiryKey(tenant, "u"), "u:s"),
      ]);
    const before = await scores();
    expect(before.map(Number)).toEqual([lastUpdated, lastUpdated + 600_000, lastUpdated, lastUpdated + 600_000]);

    const conflict = await merge(tenant, { sessionId: "s", expectedVersion: 7 });
    expect(conflict.body.errors?.[0].extensions?.code).toBe("CONFLICT");
    const tooLarge = await merge(tenant, { sessionId: "s", conversationState: { blob: "x".repeat(300_000) } });
    expect(tooLarge.body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    expect(await scores()).toEqual(before);
  });
});

describe("userSessions reads a page in two round trips: its index entries, then its sessions in one MGET (Redis)", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  it("answers a page of 20 sessions with one script call that touches only the index keys and one MGET", async () => {
    const tenant = freshTenant();
    const headers = gatewayHeaders(tenant, "u");
    for (let i = 0; i < 25; i++) {
      await server.post(
        { query: `mutation { mergeSessionContext(input: {sessionId: "s${i}"}) { version } }` },
        headers,
      );
    }
    const page = `{ userSessions(first: 20) { totalCount edges { node { sessionId version conversationState } } } }`;
    await server.post({ query: page }, headers); // loads the script once

    const before = await redis.commandCalls();
    const response = await server.post<{ userSessions: { totalCount: number; edges: unknown[] } }>(
      { query: page },
      headers,
    );
    const after = await redis.commandCalls();

    expect(response.body.data?.userSessions.totalCount).toBe(25);
    expect(response.body.data?.userSessions.edges).toHaveLength(20);
    const sent = (command: string) => (after[command] ?? 0) - (before[command] ?? 0);
    expect(sent("evalsha") + sent("eval")).toBe(1);
    // The page's 20 sessions, not the 21st entry that only tells there is a next page; nothing read one by one.
    expect(sent("mget")).toBe(1);
    expect(sent("get")).toBe(0);
  });
});
