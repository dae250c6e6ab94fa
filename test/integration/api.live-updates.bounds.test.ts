import { parseMetrics, valueOf } from "../helpers/metrics";
import { aliceWithLargeSession, RawSocket, SESSION_CHANGED, subscribeWs, wsClient } from "../helpers/live";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { mintToken, TEST_JWT_SECRET } from "../helpers/tokens";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * Live updates' security and bounds: credentials (close 4401, HTTP 401 for SSE, a JWT's exp), at most 100
 * subscriptions per connection and MAX_SUBSCRIPTIONS per process, a client that does not read closed with 1013,
 * keep-alive pings, 1001 on shutdown, and the metrics.
 */

describe("live updates: credentials", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { AUTH_MODE: "jwt", JWT_SECRET: TEST_JWT_SECRET } });
  });
  afterAll(() => server.close());

  it("closes a WebSocket with 4401 when the credentials are refused", async () => {
    const raw = new RawSocket(server.url);
    await raw.open();
    raw.send({ type: "connection_init", payload: { Authorization: "Bearer not-a-token" } });
    const { code, reason } = await raw.closed;
    expect(code).toBe(4401);
    expect(reason).toMatch(/^Unauthorized: invalid token/);
  });

  it("accepts the token in connection_init, and closes with 4401 when it expires", async () => {
    const token = await mintToken({ tenant_id: freshTenant(), sub: "alice" }, { expiresIn: "2s" });
    const raw = new RawSocket(server.url);
    await raw.init({ Authorization: `Bearer ${token}` });
    raw.send({ id: "1", type: "subscribe", payload: { query: SESSION_CHANGED, variables: { sessionId: "s1" } } });
    const { code, reason } = await raw.closed;
    expect(code).toBe(4401);
    expect(reason).toBe("Unauthorized: token expired");
  });

  it("accepts the token in the upgrade request's Authorization header too", async () => {
    const token = await mintToken({ tenant_id: freshTenant(), sub: "alice" });
    const raw = new RawSocket(server.url, { authorization: `Bearer ${token}` });
    await raw.init();
    raw.socket.close(1000);
    expect((await raw.closed).code).toBe(1000);
  });

  it("answers an SSE request with refused credentials with HTTP 401 and UNAUTHENTICATED", async () => {
    const response = await fetch(`${server.url}/graphql/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ query: SESSION_CHANGED, variables: { sessionId: "s1" } }),
    });
    expect(response.status).toBe(401);
    const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(["UNAUTHENTICATED"]);
  });
});

describe("live updates: bounds", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({
      redisUrl: redis.url,
      env: { MAX_SUBSCRIPTIONS: "150" },
    });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("refuses the 101st subscription of one connection with SUBSCRIPTION_LIMIT, and the process's cap as retryable", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const first = wsClient(server.url, { headers });
    const second = wsClient(server.url, { headers });
    try {
      const open = Array.from({ length: 100 }, (_, i) => subscribeWs(first, SESSION_CHANGED, { sessionId: `s${i}` }));
      const refused = subscribeWs(first, SESSION_CHANGED, { sessionId: "one-too-many" });
      const [result] = await refused.next(1);
      expect(result.errors?.map((e) => e.extensions?.code)).toEqual(["SUBSCRIPTION_LIMIT"]);
      expect(open.every((s) => s.results.length === 0 && !s.completed)).toBe(true);

      // 100 open here; the process allows 150: the 51st on another connection is one too many.
      const more = Array.from({ length: 50 }, (_, i) => subscribeWs(second, SESSION_CHANGED, { sessionId: `t${i}` }));
      const full = subscribeWs(second, SESSION_CHANGED, { sessionId: "full" });
      const [fullResult] = await full.next(1);
      expect(fullResult.errors?.[0].extensions).toMatchObject({ code: "SERVICE_UNAVAILABLE", retryable: true });
      expect(more.every((s) => !s.completed)).toBe(true);

      expect(await activeSubscriptions(server)).toBe(150);
      for (const s of [...open, ...more]) s.stop();
    } finally {
      await first.dispose();
      await second.dispose();
    }
  });

  it("pings idle sockets, and drops one that stops answering", async () => {
    const server = await startTestServer({ redisUrl: redis.url, env: { SUBSCRIPTION_KEEPALIVE_MS: "200" } });
    try {
      await pingsAndDrops(server);
    } finally {
      await server.close();
    }
  });

  async function pingsAndDrops(server: TestServer): Promise<void> {
    const raw = new RawSocket(server.url, gatewayHeaders(freshTenant(), "alice"));
    await raw.init();
    await raw.until(() => raw.pings >= 2, "two pings");
    raw.socket.close(1000);
    await raw.closed;

    const silent = new RawSocket(server.url, gatewayHeaders(freshTenant(), "alice"), { autoPong: false });
    await silent.init();
    // No pong to the first ping: the next interval ends the connection (an abnormal close, 1006, here).
    expect((await silent.closed).code).toBe(1006);
  }

  it("closes a client that does not read its events with 1013, instead of holding them", async () => {
    const headers = await aliceWithLargeSession(server);
    const raw = new RawSocket(server.url, headers);
    await raw.init();
    raw.send({
      id: "1",
      type: "subscribe",
      payload: { query: SESSION_CHANGED, variables: { sessionId: "s1", afterVersion: 0 } },
    });
    await raw.until(() => raw.messages.some((m) => m.type === "next"), "the first event");
    raw.socket.pause();
    const MERGE_SMALL = `mutation M($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;
    // Bounded: at most 2,000 merges; the server gives up on the reader long before.
    let merges = 0;
    for (; merges < 2000; merges++) {
      const response = await server.post(
        { query: MERGE_SMALL, variables: { input: { sessionId: "s1", conversationState: { n: merges } } } },
        headers,
      );
      expect(response.body.errors).toBeUndefined();
      if (merges % 50 === 49 && (await serverGaveUp(server))) break;
    }
    expect(merges).toBeLessThan(2000);
    raw.socket.resume();
    const { code, reason } = await raw.closed;
    expect(code).toBe(1013);
    expect(reason).toMatch(/slow consumer/);
  });

  it("closes every WebSocket with 1001 when the server stops", async () => {
    const own = await startTestServer({ redisUrl: redis.url });
    const raw = new RawSocket(own.url, gatewayHeaders(freshTenant(), "alice"));
    await raw.init();
    raw.send({ id: "1", type: "subscribe", payload: { query: SESSION_CHANGED, variables: { sessionId: "s1" } } });
    const closing = own.close();
    expect((await raw.closed).code).toBe(1001);
    await closing;
  });
});

async function activeSubscriptions(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return valueOf(parseMetrics(text), "graphql_subscriptions_active", { field: "sessionContextChanged" });
}

/** True once the server has closed a connection for not reading its events. */
async function serverGaveUp(server: TestServer): Promise<boolean> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return valueOf(parseMetrics(text), "graphql_subscription_slow_consumers_total") === 1;
}
