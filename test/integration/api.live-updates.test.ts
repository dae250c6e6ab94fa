import { MERGE, STORE } from "../helpers/api";
import {
  SESSION_CHANGED,
  USER_SESSIONS_CHANGED,
  sessionEvents,
  subscribeSse,
  subscribeWs,
  wsClient,
  type SessionEvent,
} from "../helpers/live";
import { changeChannel } from "../../src/store/keys";
import { pollUntil } from "../helpers/poll";
import type { RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  type TestServer,
  ON_EACH_STORE,
  useServerOnRedis,
  useServerOnStore,
} from "../helpers/test-server";

/**
 * Live updates through the API, on Redis and on the embedded store: `sessionContextChanged` gives every change of
 * one session in version order (replaying the kept history after `afterVersion`), `userSessionsChanged` a user's
 * session list changes; over WebSocket (graphql-ws) and SSE (graphql-sse).
 */

type Changed = { sessionContextChanged: SessionEvent };
const SETTINGS = `mutation Settings($input: TenantSettingsInput!) { updateTenantSettings(input: $input) { historyDepth } }`;
const CAPS = `mutation Caps($input: TenantSettingsInput!) { updateTenantSettings(input: $input) { maxRecentInteractions } }`;
const DELETE = `mutation Delete($sessionId: ID!) { deleteSessionContext(sessionId: $sessionId) }`;

describe.each(ON_EACH_STORE)("live updates on %s", (_name, onRedis) => {
  let server: TestServer;
  useServerOnStore(onRedis, (started) => ({ server } = started));

  const merge = async (headers: Record<string, string>, sessionId: string, state: Record<string, unknown>) => {
    const response = await server.post(
      { query: MERGE, variables: { input: { sessionId, conversationState: state } } },
      headers,
    );
    expect(response.body.errors).toBeUndefined();
  };

  it("delivers every write of a session in version order, with its change and the whole context", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(server.url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      for (let i = 1; i <= 3; i++) await merge(headers, "s1", { [`k${i}`]: i });
      const events = sessionEvents(await received.next(3));
      expect(events.map((e) => [e.type, e.version, e.operation, e.resync])).toEqual([
        ["UPDATED", 1, "MERGE", false],
        ["UPDATED", 2, "MERGE", false],
        ["UPDATED", 3, "MERGE", false],
      ]);
      expect(events[2].change).toEqual({ conversationState: { k3: 3 } });
      expect(events[2].context?.conversationState).toEqual({ k1: 1, k2: 2, k3: 3 });
      expect(events[1].context?.conversationState).toEqual({ k1: 1, k2: 2 });
      received.stop();
    } finally {
      await client.dispose();
    }
  });

  it("gives a store's change as it was given, live and replayed: its context, or more when a cap dropped entries", async () => {
    const tenant = freshTenant();
    await server.post(
      { query: CAPS, variables: { input: { maxRecentInteractions: 1 } } },
      gatewayHeaders(tenant, "root", ["admin"]),
    );
    const headers = gatewayHeaders(tenant, "alice");
    const store = async (input: Record<string, unknown>) => {
      const response = await server.post(
        { query: STORE, variables: { input: { sessionId: "s1", ...input } } },
        headers,
      );
      expect(response.body.errors).toBeUndefined();
    };
    const client = wsClient(server.url, { headers });
    try {
      const live = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      await store({ conversationState: { a: [1, { b: "}" }] }, recentInteractions: [{ n: 1 }] });
      await store({ userPreferences: { theme: "dark" }, recentInteractions: [{ n: 2 }, { n: 3 }] });
      const expected = [
        {
          conversationState: { a: [1, { b: "}" }] },
          interruptedQueries: [],
          recentInteractions: [{ n: 1 }],
          userPreferences: {},
        },
        {
          conversationState: {},
          interruptedQueries: [],
          recentInteractions: [{ n: 2 }, { n: 3 }],
          userPreferences: { theme: "dark" },
        },
      ];
      expect(sessionEvents(await live.next(2)).map((e) => [e.operation, e.change])).toEqual([
        ["STORE", expected[0]],
        ["STORE", expected[1]],
      ]);
      live.stop();
      const replayed = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      expect(sessionEvents(await replayed.next(2)).map((e) => [e.operation, e.change])).toEqual([
        ["STORE", expected[0]],
        ["STORE", expected[1]],
      ]);
      replayed.stop();
    } finally {
      await client.dispose();
    }
  });

  it("replays the kept changes after afterVersion, then goes on live", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    for (let i = 1; i <= 5; i++) await merge(headers, "s1", { [`k${i}`]: i });
    const client = wsClient(server.url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 2 });
      const replayed = sessionEvents(await received.next(3));
      expect(replayed.map((e) => e.version)).toEqual([3, 4, 5]);
      expect(replayed[0].context?.conversationState).toEqual({ k1: 1, k2: 2, k3: 3 });
      await merge(headers, "s1", { k6: 6 });
      const [, , , live] = sessionEvents(await received.next(4));
      expect([live.version, live.resync, live.change]).toEqual([6, false, { conversationState: { k6: 6 } }]);
    } finally {
      await client.dispose();
    }
  });

  it("stands one resync event for changes the history no longer keeps", async () => {
    const tenant = freshTenant();
    const admin = gatewayHeaders(tenant, "root", ["admin"]);
    await server.post({ query: SETTINGS, variables: { input: { historyDepth: 2 } } }, admin);
    const headers = gatewayHeaders(tenant, "alice");
    for (let i = 1; i <= 5; i++) await merge(headers, "s1", { [`k${i}`]: i });
    const client = wsClient(server.url, { headers });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 1 });
      const [resync] = sessionEvents(await received.next(1));
      expect([resync.type, resync.version, resync.resync, resync.operation, resync.change]).toEqual([
        "UPDATED",
        5,
        true,
        null,
        null,
      ]);
      expect(resync.context?.conversationState).toEqual({ k1: 1, k2: 2, k3: 3, k4: 4, k5: 5 });
      await merge(headers, "s1", { k6: 6 });
      const events = sessionEvents(await received.next(2));
      expect([events[1].version, events[1].resync]).toEqual([6, false]);
    } finally {
      await client.dispose();
    }
  });

  it("gives DELETED for a deletion, and DELETED with resync for a session gone before the subscription", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    await merge(headers, "s1", { a: 1 });
    await merge(headers, "s1", { b: 2 });
    const client = wsClient(server.url, { headers });
    try {
      // Version 2 replayed first: the subscription is caught up before the deletion (else it would learn of it
      // while catching up, as a resync).
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 1 });
      expect(sessionEvents(await received.next(1))[0].version).toBe(2);
      await server.post({ query: DELETE, variables: { sessionId: "s1" } }, headers);
      const [, deleted] = sessionEvents(await received.next(2));
      expect([deleted.type, deleted.version, deleted.resync, deleted.context]).toEqual(["DELETED", 2, false, null]);
      await merge(headers, "s1", { again: true });
      const [, , recreated] = sessionEvents(await received.next(3));
      expect([recreated.type, recreated.version]).toEqual(["UPDATED", 1]);

      const late = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "gone", afterVersion: 4 });
      const [gone] = sessionEvents(await late.next(1));
      expect([gone.type, gone.version, gone.resync]).toEqual(["DELETED", 4, true]);
    } finally {
      await client.dispose();
    }
  });

  it("never shows another tenant's events, whatever ids are named", async () => {
    const mine = gatewayHeaders(freshTenant(), "alice");
    const theirs = gatewayHeaders(freshTenant(), "alice", ["admin"]);
    const client = wsClient(server.url, { headers: theirs });
    try {
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, {
        sessionId: "shared",
        userId: "alice",
        afterVersion: 0,
      });
      const list = subscribeWs(client, USER_SESSIONS_CHANGED, { userId: "alice" });
      for (let i = 1; i <= 3; i++) await merge(mine, "shared", { secret: i });
      await merge(theirs, "shared", { own: true });
      const [own] = sessionEvents(await received.next(1));
      expect([own.version, own.change]).toEqual([1, { conversationState: { own: true } }]);
      const [listed] = await list.next(1);
      expect(listed.data).toMatchObject({ userSessionsChanged: { type: "UPDATED", sessionId: "shared", version: 1 } });
      // The other tenant's three writes were committed before this tenant's one: nothing of them came first.
      expect(received.results).toHaveLength(1);
      expect(list.results).toHaveLength(1);
    } finally {
      await client.dispose();
    }
  });

  it("refuses another user's session without the service role, for that subscription only", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(server.url, { headers });
    try {
      const refused = subscribeWs(client, SESSION_CHANGED, { sessionId: "s1", userId: "bob" });
      const [result] = await refused.next(1);
      expect(result.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);
      await refused.ended();
      const allowed = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      await merge(headers, "s1", { fine: true });
      expect(sessionEvents(await allowed.next(1))[0].version).toBe(1);
    } finally {
      await client.dispose();
    }
  });

  it("lists a user's session changes: written, then erased with deleteUserSessions", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    const client = wsClient(server.url, { headers });
    try {
      const list = subscribeWs<{ userSessionsChanged: { type: string; sessionId: string; version: number } }>(
        client,
        USER_SESSIONS_CHANGED,
      );
      // A live feed: wait for it to be there (the first write's event) before counting on the others.
      for (;;) {
        await merge(headers, "probe", { n: 1 });
        try {
          await list.next(1, 500);
          break;
        } catch {
          // not subscribed yet: the next probe write tells
        }
      }
      const base = list.results.length;
      await merge(headers, "a", { x: 1 });
      await merge(headers, "b", { y: 1 });
      const erased = await server.post({ query: `mutation { deleteUserSessions }` }, headers);
      expect(erased.body.data).toEqual({ deleteUserSessions: 3 });
      // Until the three deletions are in (a late probe write's event may come too: it is left out below).
      let events: { type: string; sessionId: string; version: number }[] = [];
      for (let n = base + 1; events.filter((e) => e.type === "DELETED").length < 3; n++) {
        events = (await list.next(n)).slice(base).map((r) => r.data!.userSessionsChanged);
      }
      const written = events.filter((e) => e.type === "UPDATED" && e.sessionId !== "probe");
      expect(written.map((e) => [e.sessionId, e.version])).toEqual([
        ["a", 1],
        ["b", 1],
      ]);
      expect(
        events
          .filter((e) => e.type === "DELETED")
          .map((e) => e.sessionId)
          .sort(),
      ).toEqual(["a", "b", "probe"]);
    } finally {
      await client.dispose();
    }
  });

  it("serves the same over SSE on /graphql/stream", async () => {
    const headers = gatewayHeaders(freshTenant(), "alice");
    await merge(headers, "s1", { a: 1 });
    const received = subscribeSse<Changed>(server.url, headers, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
    try {
      expect(sessionEvents(await received.next(1))[0].version).toBe(1);
      await merge(headers, "s1", { b: 2 });
      const events = sessionEvents(await received.next(2));
      expect([events[1].version, events[1].context?.conversationState]).toEqual([2, { a: 1, b: 2 }]);
    } finally {
      received.dispose();
    }
  });
});

describe("live updates on Redis: a write is announced where a server follows its user, and only there", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  const merge = async (headers: Record<string, string>, sessionId: string) => {
    const response = await server.post(
      { query: MERGE, variables: { input: { sessionId, recentInteractions: [{ n: 1 }] } } },
      headers,
    );
    expect(response.body.errors).toBeUndefined();
  };
  /** SPUBLISH calls Redis ran while `write` ran. */
  const announcements = async (write: () => Promise<void>) => {
    const before = await redis.commandCalls();
    await write();
    const after = await redis.commandCalls();
    return (after.spublish ?? 0) - (before.spublish ?? 0);
  };
  const followers = async (tenant: string, user: string) => {
    const reply = (await redis.admin.call("PUBSUB", "SHARDNUMSUB", changeChannel(tenant, user))) as [string, number];
    return reply[1];
  };

  it("publishes nothing for a user nobody follows, and every write of one somebody follows", async () => {
    const tenant = freshTenant();
    const alice = gatewayHeaders(tenant, "alice");
    const bob = gatewayHeaders(tenant, "bob");
    await merge(alice, "a1"); // loads the script
    expect(await announcements(() => merge(bob, "b1"))).toBe(0);

    const client = wsClient(server.url, { headers: alice });
    try {
      // The replay of version 1 comes after the server has subscribed to alice's channel.
      const received = subscribeWs<Changed>(client, SESSION_CHANGED, { sessionId: "a1", afterVersion: 0 });
      expect(sessionEvents(await received.next(1)).map((e) => e.version)).toEqual([1]);
      expect(await followers(tenant, "alice")).toBe(1);
      expect(await announcements(() => merge(alice, "a1"))).toBe(1);
      expect(await announcements(() => merge(bob, "b1"))).toBe(0);
      expect(sessionEvents(await received.next(2)).map((e) => [e.version, e.resync])).toEqual([
        [1, false],
        [2, false],
      ]);
      received.stop();
      // The server leaves the channel without telling anyone: ask Redis.
      await pollUntil(
        "the server to leave alice's channel",
        () => followers(tenant, "alice"),
        (n) => n === 0,
        {
          timeoutMs: 5000,
        },
      );
      expect(await announcements(() => merge(alice, "a1"))).toBe(0);
    } finally {
      await client.dispose();
    }
  });
});
