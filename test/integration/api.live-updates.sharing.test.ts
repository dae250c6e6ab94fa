import { MERGE } from "../helpers/api";
import { parseMetrics, valueOf } from "../helpers/metrics";
import {
  aliceWithLargeSession,
  RawSocket,
  SESSION_CHANGED,
  sessionEvents,
  subscribeSse,
  subscribeWs,
  wsClient,
  type Received,
  type SessionEvent,
} from "../helpers/live";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  ON_EACH_STORE,
  useServerOnStore,
} from "../helpers/test-server";

/**
 * Subscribers of one session with the same document, operation and variables share each live event's execution and
 * serialization (live-subscribe.ts): the event is executed once and the same bytes go to each, with its own id. What
 * must not change: every subscriber gets every event once, in order, under its own id; other selections or variables
 * get their own answers; a slow subscriber is closed alone; another tenant's events are never seen.
 */

type Changed = { sessionContextChanged: SessionEvent };

const VERSION_ONLY = `subscription VersionOnly($sessionId: ID!, $afterVersion: Int) {
  sessionContextChanged(sessionId: $sessionId, afterVersion: $afterVersion) { v: version }
}`;

const MAYBE_CONTEXT = `subscription MaybeContext($sessionId: ID!, $afterVersion: Int, $withContext: Boolean!) {
  sessionContextChanged(sessionId: $sessionId, afterVersion: $afterVersion) {
    version
    context @include(if: $withContext) { version conversationState }
  }
}`;

describe.each(ON_EACH_STORE)("live updates shared between subscribers on %s", (_name, onRedis) => {
  let server: TestServer;
  useServerOnStore(onRedis, (started) => ({ server } = started));

  const merge = async (headers: Record<string, string>, sessionId: string, state: Record<string, unknown>) => {
    const response = await server.post(
      { query: MERGE, variables: { input: { sessionId, conversationState: state } } },
      headers,
    );
    expect(response.body.errors).toBeUndefined();
  };

  const metrics = async () => parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
  const executions = async (shared: "true" | "false") =>
    valueOf(await metrics(), "session_event_executions_total", { shared });
  const delivered = async () =>
    valueOf(await metrics(), "session_events_delivered_total", { field: "sessionContextChanged" });

  it("gives each subscriber with the same document every event once, in order, under its own id, executing it once", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const variables = { sessionId: "s1", afterVersion: 0 };
    // Two subscriptions on one socket, one on another (raw: their ids are visible), a graphql-ws client and SSE.
    const first = new RawSocket(server.url, headers);
    const second = new RawSocket(server.url, headers);
    const client = wsClient(server.url, { headers });
    const sse = subscribeSse<Changed>(server.url, headers, SESSION_CHANGED, variables);
    try {
      await first.init();
      await second.init();
      for (const [socket, id] of [
        [first, "a1"],
        [first, "a2"],
        [second, "b1"],
      ] as const) {
        socket.send({ id, type: "subscribe", payload: { query: SESSION_CHANGED, variables } });
      }
      const viaClient = subscribeWs<Changed>(client, SESSION_CHANGED, variables);

      // The first write reaches everyone (each caught up before it, or replays it): from here on all are live.
      await merge(headers, "s1", { n: 1 });
      const versionsOf = (socket: RawSocket, id: string) =>
        socket.messages
          .filter((m) => m.id === id && m.type === "next")
          .map((m) => (m.payload as { data: Changed }).data.sessionContextChanged.version);
      const allHave = async (n: number) => {
        await first.until(() => versionsOf(first, "a1").length >= n && versionsOf(first, "a2").length >= n, `${n}`);
        await second.until(() => versionsOf(second, "b1").length >= n, `${n} on b1`);
        await viaClient.next(n);
        await sse.next(n);
      };
      await allHave(1);
      const sharedBefore = await executions("true");
      const ownBefore = await executions("false");
      const deliveredBefore = await delivered();

      const N = 20;
      for (let i = 2; i <= N; i++) await merge(headers, "s1", { n: i });
      await allHave(N);

      const expected = Array.from({ length: N }, (_, i) => i + 1);
      expect(versionsOf(first, "a1")).toEqual(expected);
      expect(versionsOf(first, "a2")).toEqual(expected);
      expect(versionsOf(second, "b1")).toEqual(expected);
      expect(second.messages.filter((m) => m.type === "next" && m.id !== "b1")).toEqual([]);
      for (const received of [viaClient, sse]) {
        const events = sessionEvents(received.results);
        expect(events.map((e) => e.version)).toEqual(expected);
        expect(events[N - 1].context?.conversationState).toEqual({ n: N });
      }
      // Byte for byte the same answer under each id.
      const lastOf = (socket: RawSocket, id: string) =>
        socket.messages.filter((m) => m.id === id && m.type === "next").at(-1)?.payload;
      expect(lastOf(first, "a1")).toEqual(lastOf(second, "b1"));
      expect(lastOf(first, "a1")).toEqual(viaClient.results.at(-1));

      // The 19 live events: executed once each for the five subscribers, and delivered five times each.
      expect((await executions("true")) - sharedBefore).toBe(N - 1);
      expect((await executions("false")) - ownBefore).toBe(0);
      expect((await delivered()) - deliveredBefore).toBe(5 * (N - 1));
    } finally {
      first.socket.close(1000);
      second.socket.close(1000);
      sse.dispose();
      await client.dispose();
    }
  });

  it("gives subscribers with another selection, or other variables, their own answers", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(server.url, { headers });
    try {
      const base = { sessionId: "s1", afterVersion: 0 };
      const full = subscribeWs<Changed>(client, SESSION_CHANGED, base);
      const versionOnly = subscribeWs<{ sessionContextChanged: { v: number } }>(client, VERSION_ONLY, base);
      type Maybe = { sessionContextChanged: { version: number; context?: { version: number } } };
      const withContext = subscribeWs<Maybe>(client, MAYBE_CONTEXT, { ...base, withContext: true });
      const withoutContext = subscribeWs<Maybe>(client, MAYBE_CONTEXT, { ...base, withContext: false });
      const everyone = [full, versionOnly, withContext, withoutContext] as Received<unknown>[];

      await merge(headers, "s1", { n: 1 });
      for (const received of everyone) await received.next(1);
      // Another afterVersion only changes where its stream starts, not its answers: it shares `full`'s.
      const fullToo = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 1 });
      const sharedBefore = await executions("true");

      const N = 5;
      for (let i = 2; i <= N; i++) await merge(headers, "s1", { n: i });
      for (const received of everyone) await received.next(N);
      await fullToo.next(N - 1);

      const expected = Array.from({ length: N }, (_, i) => i + 1);
      expect(sessionEvents(full.results).map((e) => e.version)).toEqual(expected);
      expect(sessionEvents(fullToo.results).map((e) => e.version)).toEqual(expected.slice(1));
      expect(versionOnly.results.map((r) => r.data)).toEqual(expected.map((v) => ({ sessionContextChanged: { v } })));
      expect(withContext.results.map((r) => r.data?.sessionContextChanged)).toEqual(
        expected.map((version) => ({ version, context: { version, conversationState: { n: version } } })),
      );
      expect(withoutContext.results.map((r) => r.data?.sessionContextChanged)).toEqual(
        expected.map((version) => ({ version })),
      );
      // Four different answers to each of the 4 live events: full (and fullToo), version only, with and without context.
      expect((await executions("true")) - sharedBefore).toBe(4 * (N - 1));
      for (const s of [...everyone, fullToo] as { stop?: () => void }[]) s.stop?.();
    } finally {
      await client.dispose();
    }
  });

  it("never gives a subscriber another tenant's events, with the same user, session and document", async () => {
    const ours = gatewayHeaders(freshTenant(), "alice");
    const theirs = gatewayHeaders(freshTenant(), "alice");
    const ourClient = wsClient(server.url, { headers: ours });
    const theirClient = wsClient(server.url, { headers: theirs });
    try {
      const variables = { sessionId: "s1", afterVersion: 0 };
      const we = subscribeWs<Changed>(ourClient, SESSION_CHANGED, variables);
      const they = subscribeWs<Changed>(theirClient, SESSION_CHANGED, variables);
      for (let i = 1; i <= 3; i++) await merge(ours, "s1", { ours: i });
      await we.next(3);
      // Their own first write is the first thing they see: nothing of ours came before it.
      await merge(theirs, "s1", { theirs: 1 });
      const [first] = sessionEvents(await they.next(1));
      expect([first.version, first.context?.conversationState]).toEqual([1, { theirs: 1 }]);
      expect(they.results).toHaveLength(1);
      // And ours saw nothing of theirs: our next write is the next thing we get.
      await merge(ours, "s1", { ours: 4 });
      const events = sessionEvents(await we.next(4));
      expect(events.map((e) => [e.version, e.context?.conversationState])).toEqual([
        [1, { ours: 1 }],
        [2, { ours: 2 }],
        [3, { ours: 3 }],
        [4, { ours: 4 }],
      ]);
      expect(we.results).toHaveLength(4);
    } finally {
      await ourClient.dispose();
      await theirClient.dispose();
    }
  });
});

describe("a slow subscriber among subscribers sharing its events", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("is closed with 1013 alone: the others get every event once, in order", async () => {
    const headers = await aliceWithLargeSession(server);
    const variables = { sessionId: "s1", afterVersion: 1 };
    const slow = new RawSocket(server.url, headers);
    const client = wsClient(server.url, { headers });
    const otherClient = wsClient(server.url, { headers });
    try {
      await slow.init();
      slow.send({ id: "slow", type: "subscribe", payload: { query: SESSION_CHANGED, variables } });
      const others = [
        subscribeWs<Changed>(client, SESSION_CHANGED, variables),
        subscribeWs<Changed>(otherClient, SESSION_CHANGED, variables),
      ];
      const MERGE_SMALL = `mutation M($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;
      const mergeSmall = async (n: number) => {
        const response = await server.post(
          { query: MERGE_SMALL, variables: { input: { sessionId: "s1", conversationState: { n } } } },
          headers,
        );
        expect(response.body.errors).toBeUndefined();
      };
      await mergeSmall(0);
      await slow.until(() => slow.messages.some((m) => m.type === "next"), "the first event");
      for (const received of others) await received.next(1);
      slow.socket.pause();

      // Bounded: at most 2,000 merges; the server gives up on the slow reader long before.
      let merges = 1;
      for (; merges < 2000; merges++) {
        await mergeSmall(merges);
        if (merges % 50 === 49 && (await slowConsumersClosed(server)) === 1) break;
      }
      expect(merges).toBeLessThan(2000);
      slow.socket.resume();
      expect((await slow.closed).code).toBe(1013);

      // Versions 2 (the first merge) to merges + 2.
      const expected = Array.from({ length: merges + 1 }, (_, i) => i + 2);
      for (const received of others) {
        const events = sessionEvents(await received.next(expected.length, 30_000));
        expect(events.map((e) => e.version)).toEqual(expected);
        expect(received.completed).toBe(false);
      }
      expect(await slowConsumersClosed(server)).toBe(1);
    } finally {
      slow.socket.close(1000);
      await client.dispose();
      await otherClient.dispose();
    }
  });
});

describe("a slow SSE subscriber", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("has its response ended when it stops reading, instead of the server holding its events", async () => {
    const headers = await aliceWithLargeSession(server);
    const response = await fetch(`${server.url}/graphql/stream`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ query: SESSION_CHANGED, variables: { sessionId: "s1", afterVersion: 0 } }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    // The replayed version 1 arrives; then this client reads nothing more.
    let text = "";
    while (!text.includes("event: next")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended before its first event");
      text += Buffer.from(value).toString();
    }
    const MERGE_SMALL = `mutation M($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;
    let merges = 0;
    for (; merges < 2000; merges++) {
      const merged = await server.post(
        { query: MERGE_SMALL, variables: { input: { sessionId: "s1", conversationState: { n: merges } } } },
        headers,
      );
      expect(merged.body.errors).toBeUndefined();
      if (merges % 50 === 49 && (await slowConsumersClosed(server)) === 1) break;
    }
    expect(merges).toBeLessThan(2000);
    // The rest of what was sent, then the end: the server destroyed the response.
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return "ended";
      })(),
    ).rejects.toThrow();
  });
});

async function slowConsumersClosed(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return valueOf(parseMetrics(text), "graphql_subscription_slow_consumers_total");
}
