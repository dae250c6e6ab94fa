import pino from "pino";
import { ServiceUnavailableError } from "../../src/errors/errors";
import type { SessionRef } from "../../src/sessions/session-record";
import { sessionKey, settingsKey } from "../../src/store/keys";
import { createRedisClient, whenReady } from "../../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { pollUntil } from "../helpers/poll";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";
import { DEFAULTS, LIMITS } from "./session-store.harness";

/**
 * Resharding under traffic: the slot of a tenant that is being written and read moves to another master, the way
 * `redis-cli --cluster reshard` moves it (SETSLOT IMPORTING/MIGRATING, MIGRATE … KEYS in batches, SETSLOT NODE),
 * while every kind of operation keeps running — merges (through the store and the API), batched reads of 10
 * sessions (the store's getMany, an API request with 10 aliases, `_entities` with 10 representations), listings
 * (paged through the store, `userSessions` through the API), history pages and purges — and none of them may fail.
 *
 * The move stops half-way once, with half of the listed user's sessions on each master: a batch of reads then
 * names keys on both sides (the source answers ASK or TRYAGAIN to its MGET; the store splits it per key), and a
 * listing's second step reads sessions on both sides. The hot sessions' keys stay on the source meanwhile; they
 * move with the rest, back to back, where a write whose keys a batch splits gets TRYAGAIN and is tried again.
 * ioredis follows ASK and MOVED; a redirection means the command did not run, so no merge is applied twice.
 */

/** Tenant defaults with room for every entry the traffic below merges into the hot sessions. */
const ROOMY = { ...DEFAULTS, maxInterruptedQueries: 10_000, maxRecentInteractions: 10_000 };
/** u1 has the 10 sessions that the batched reads and listings ask for; s0 is hot (store merges). */
const listed: SessionRef[] = Array.from({ length: 10 }, (_, i) => ({ userId: "u1", sessionId: `s${i}` }));
const hot = listed[0];
/** API merges go to a session of another user. */
const apiHot: SessionRef = { userId: "u2", sessionId: "s0" };

/** Traffic bounds: the loops stop when told, at this deadline, or after this many operations per worker. */
const TRAFFIC_DEADLINE_MS = 60_000;
const MAX_OPERATIONS_PER_WORKER = 20_000;

const KINDS = [
  "merge",
  "api merge",
  "batched read",
  "api batched read",
  "api _entities",
  "listing",
  "api userSessions",
  "history",
  "purge",
] as const;
type Kind = (typeof KINDS)[number];

const ALIASES = `{ ${listed.map((r) => `${r.sessionId}: sessionContext(sessionId: "${r.sessionId}") { sessionId version }`).join(" ")} }`;
const ENTITIES = `query E($r: [_Any!]!) { _entities(representations: $r) { ... on SessionContext { sessionId version } } }`;
const USER_SESSIONS = `{ userSessions(first: 10) { totalCount edges { node { sessionId } } } }`;
const API_MERGE = `mutation M($input: SessionContextInput!) { mergeSessionContext(input: $input) { version } }`;

describe("Resharding: a tenant's slot moves to another master while it is written and read", () => {
  let cluster: RedisClusterProcess;
  let store: RedisSessionStore;
  let server: TestServer;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    const client = createRedisClient({
      clusterNodes: cluster.ports.map((port) => ({ host: "127.0.0.1", port })),
      logger: pino({ level: "silent" }),
    });
    if (!(await whenReady(client, 10_000))) throw new Error("cluster client not ready");
    store = new RedisSessionStore(client, { defaults: ROOMY, schedule: new RedisCleanupSchedule(client) });
    server = await startTestServer({ env: { REDIS_CLUSTER_NODES: cluster.nodesVariable } });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await cluster?.stop();
  });

  it("no operation fails, every merge lands exactly once, and the slot ends on the target", async () => {
    const tenant = freshTenant();
    for (const ref of [...listed, apiHot])
      await store.store(tenant, ref, { conversationState: { seeded: true } }, LIMITS);
    const admin = cluster.admin;
    const slot = Number(await admin.cluster("KEYSLOT", settingsKey(tenant)));
    const sourcePort = await cluster.ownerOf(slot);
    const masters = (await cluster.topology()).filter((n) => n.role === "master");
    const source = masters.find((n) => n.port === sourcePort)!;
    const target = masters.find((n) => n.port !== sourcePort)!;
    const keysBefore = Number(await cluster.node(source.port).cluster("COUNTKEYSINSLOT", slot));
    expect(keysBefore).toBeGreaterThanOrEqual(listed.length + 1 + 4 + 2);

    const ok = Object.fromEntries(KINDS.map((kind) => [kind, 0])) as Record<Kind, number>;
    const failures: { kind: Kind; error: string }[] = [];
    const merged: string[] = [];
    const refused: string[] = []; // SERVICE_UNAVAILABLE, nothing written
    const unknown: string[] = []; // SERVICE_UNAVAILABLE, the write may or may not have been applied
    const apiMerged: string[] = [];
    let stop = false;
    const stopAt = Date.now() + TRAFFIC_DEADLINE_MS;
    const running = () => !stop && Date.now() < stopAt;

    /** Runs `operation` in a loop; it throws (or fails an expectation) when the operation did not work. */
    const worker = async (kind: Kind, operation: (n: number) => Promise<void>) => {
      for (let n = 0; running() && n < MAX_OPERATIONS_PER_WORKER; n++) {
        try {
          await operation(n);
          ok[kind]++;
        } catch (error) {
          failures.push({ kind, error: error instanceof Error ? error.message : String(error) });
        }
      }
    };
    const check = (condition: boolean, what: string) => {
      if (!condition) throw new Error(what);
    };
    const headers = gatewayHeaders(tenant, "u1");
    const mergeWorker = (w: number) =>
      worker("merge", async (n) => {
        const entry = `w${w}-${n}`;
        try {
          await store.merge(tenant, hot, { interruptedQueries: [entry] }, LIMITS);
          merged.push(entry);
        } catch (error) {
          if (error instanceof ServiceUnavailableError)
            (error.extensions.outcomeUnknown ? unknown : refused).push(entry);
          throw error;
        }
      });

    const traffic = Promise.all([
      mergeWorker(1),
      mergeWorker(2),
      mergeWorker(3),
      worker("api merge", async (n) => {
        const entry = `api-${n}`;
        const response = await server.post(
          { query: API_MERGE, variables: { input: { sessionId: apiHot.sessionId, interruptedQueries: [entry] } } },
          gatewayHeaders(tenant, apiHot.userId),
        );
        check(response.body.errors === undefined, JSON.stringify(response.body.errors));
        apiMerged.push(entry);
      }),
      worker("batched read", async () => {
        const records = await store.getMany(tenant, listed);
        check(
          records.every((r, i) => r?.sessionId === listed[i].sessionId),
          "a batched read missed a session",
        );
      }),
      worker("api batched read", async () => {
        const response = await server.post<Record<string, { sessionId: string } | null>>({ query: ALIASES }, headers);
        check(response.body.errors === undefined, JSON.stringify(response.body.errors));
        check(
          listed.every((r) => response.body.data?.[r.sessionId]?.sessionId === r.sessionId),
          "an alias read null",
        );
      }),
      worker("api _entities", async () => {
        const representations = listed.map((r) => ({ __typename: "SessionContext", ...r }));
        const response = await server.post<{ _entities: ({ sessionId: string } | null)[] }>(
          { query: ENTITIES, variables: { r: representations } },
          headers,
        );
        check(response.body.errors === undefined, JSON.stringify(response.body.errors));
        check(
          response.body.data?._entities.map((e) => e?.sessionId).join() === listed.map((r) => r.sessionId).join(),
          "_entities missed a session",
        );
      }),
      worker("listing", async () => {
        // Paged, 4 at a time. The hot session moves to the top whenever it is merged, so a walk may miss it
        // (the pages promise that a session written again moves up instead of showing twice); every other one
        // shows exactly once, and the count is always exact.
        const seen: string[] = [];
        let after;
        for (;;) {
          const page = await store.listUserSessions(tenant, "u1", 4, after);
          check(page.totalCount === listed.length, `totalCount ${page.totalCount}`);
          check(
            page.entries.every((e) => e.record !== null),
            "a listed session had no document",
          );
          seen.push(...page.entries.map((e) => e.ref.sessionId));
          if (!page.hasNextPage) break;
          after = page.entries.at(-1)!.cursor;
        }
        const cold = listed.filter((r) => r !== hot).map((r) => r.sessionId);
        check(
          cold.every((id) => seen.filter((s) => s === id).length === 1) && seen.length <= listed.length,
          `listing walk saw ${seen.join()}`,
        );
      }),
      worker("api userSessions", async () => {
        const response = await server.post<{
          userSessions: { totalCount: number; edges: { node: { sessionId: string } }[] };
        }>({ query: USER_SESSIONS }, headers);
        check(response.body.errors === undefined, JSON.stringify(response.body.errors));
        const page = response.body.data!.userSessions;
        check(page.totalCount === listed.length && page.edges.length === listed.length, JSON.stringify(page));
      }),
      worker("history", async () => {
        const page = await store.history(tenant, listed[1], 5);
        check(page.versions.length === 1, `history of an unchanged session has ${page.versions.length} versions`);
      }),
      worker("purge", async () => {
        check((await store.purgeOrphans(tenant, 86_400)) === 0, "a purge deleted a live session");
      }),
    ]);

    /** Lets the traffic run in the current migration state until every kind of operation succeeded a few times. */
    const trafficFlows = async (what: string, count = 5) => {
      const before = { ...ok };
      await pollUntil(
        `traffic flows ${what}`,
        () => Object.fromEntries(KINDS.map((kind) => [kind, ok[kind] - before[kind]])),
        (more) => KINDS.every((kind) => more[kind] >= (kind === "merge" ? 4 * count : count)),
        { timeoutMs: 20_000, intervalMs: 5 },
      );
    };
    const migrate = (keys: string[]) =>
      cluster.node(source.port).migrate("127.0.0.1", target.port, "", 0, 5000, "KEYS", ...keys);

    const askingBefore = await commandCalls(cluster, target.port, "asking");
    const tryagainBefore = await errorCount(cluster, [source.port, target.port], "TRYAGAIN");
    try {
      await trafficFlows("before the move");
      // 1. Mark the slot: the target accepts it (with ASKING), the source hands missing keys over (ASK).
      await cluster.node(target.port).cluster("SETSLOT", slot, "IMPORTING", source.id);
      await cluster.node(source.port).cluster("SETSLOT", slot, "MIGRATING", target.id);
      await trafficFlows("while the slot is marked and its keys are still on the source");
      // 2. Half of u1's cold sessions first, and a pause: a batch of reads now names keys on both masters.
      await migrate(listed.slice(5).map((r) => sessionKey(tenant, r.userId, r.sessionId)));
      await trafficFlows("while the listed sessions are split between the two masters");
      // 3. The rest in batches, back to back, as redis-cli does. A write whose keys a batch splits gets TRYAGAIN.
      for (let batch = 0; ; batch++) {
        const keys = (await cluster.node(source.port).cluster("GETKEYSINSLOT", slot, 4)) as string[];
        if (keys.length === 0) break;
        if (batch > 100) throw new Error("the slot's keys never ran out");
        await migrate(keys);
      }
      // Every key is on the target now, the slot still belongs to the source: the source answers ASK.
      await trafficFlows("while the source redirects with ASK");
      // 4. Hand the slot over: the target first, then the source, then the other masters (MOVED from now on).
      for (const node of [target, source, ...masters.filter((m) => m !== target && m !== source)]) {
        await cluster.node(node.port).cluster("SETSLOT", slot, "NODE", target.id);
      }
      await trafficFlows("after the slot moved");
    } finally {
      stop = true;
      await traffic;
    }

    const [hotFinal, apiFinal] = (await store.getMany(tenant, [hot, apiHot])).map((record) => record!);
    const tryagain = (await errorCount(cluster, [source.port, target.port], "TRYAGAIN")) - tryagainBefore;
    process.stdout.write(
      `resharding slot ${slot} ${source.port} → ${target.port}: ` +
        KINDS.map((kind) => `${ok[kind]} ${kind}`).join(", ") +
        `; ${failures.length} failed; TRYAGAIN answered ${tryagain} times\n`,
    );

    expect(failures).toEqual([]);
    expect(refused).toEqual([]);
    expect(unknown).toEqual([]);
    // Every merge landed once, and the version counts exactly the writes.
    expect([...hotFinal.interruptedQueries].sort()).toEqual([...merged].sort());
    expect(hotFinal.version).toBe(1 + merged.length);
    expect([...apiFinal.interruptedQueries].sort()).toEqual([...apiMerged].sort());
    expect(apiFinal.version).toBe(1 + apiMerged.length);
    // The ASK redirections were followed with ASKING on the target.
    expect(await commandCalls(cluster, target.port, "asking")).toBeGreaterThan(askingBefore);
    // The slot now lives on the target, every key with it; every node agrees.
    for (const port of masters.map((m) => m.port)) expect(await cluster.ownerOf(slot, port)).toBe(target.port);
    expect(Number(await cluster.node(source.port).cluster("COUNTKEYSINSLOT", slot))).toBe(0);
    expect(Number(await cluster.node(target.port).cluster("COUNTKEYSINSLOT", slot))).toBe(keysBefore);
    // And the store keeps working on the new owner: reads, listing and purge.
    expect((await store.getMany(tenant, listed)).every((r) => r !== null)).toBe(true);
    expect((await store.listUserSessions(tenant, "u1", 10)).totalCount).toBe(listed.length);
    expect(await store.purgeOrphans(tenant, 86_400)).toBe(0);
  }, 120_000);
});

async function commandCalls(cluster: RedisClusterProcess, port: number, command: string): Promise<number> {
  const info = await cluster.node(port).info("commandstats");
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}

/** How many times the nodes answered an error reply that begins with `prefix` (INFO errorstats). */
async function errorCount(cluster: RedisClusterProcess, ports: number[], prefix: string): Promise<number> {
  let count = 0;
  for (const port of ports) {
    const info = await cluster.node(port).info("errorstats");
    const match = new RegExp(`^errorstat_${prefix}:count=(\\d+)`, "m").exec(info);
    count += match ? Number(match[1]) : 0;
  }
  return count;
}
