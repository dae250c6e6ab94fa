import pino from "pino";
import { ServiceUnavailableError } from "../../src/errors/errors";
import type { SessionRef } from "../../src/sessions/session-record";
import { settingsKey } from "../../src/store/keys";
import { createRedisClient, whenReady } from "../../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { pollUntil } from "../helpers/poll";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { freshTenant } from "../helpers/test-server";
import { DEFAULTS, LIMITS } from "./session-store.harness";

/**
 * Resharding under traffic: the slot of a tenant that is being written moves to another master, the way
 * `redis-cli --cluster reshard` moves it (SETSLOT IMPORTING/MIGRATING, MIGRATE … KEYS in batches, SETSLOT NODE),
 * while merges and batched reads keep running. ioredis follows the ASK and MOVED redirections; a redirection means
 * the command did not run, so following it never applies a merge twice.
 */

/** Tenant defaults with room for every entry the traffic below merges into the hot session. */
const ROOMY = { ...DEFAULTS, maxInterruptedQueries: 10_000, maxRecentInteractions: 10_000 };
const users = ["u1", "u2", "u3"];
const seeded: SessionRef[] = users.flatMap((userId) => [1, 2].map((n) => ({ userId, sessionId: `s${n}` })));
const hot: SessionRef = { userId: "u1", sessionId: "s1" };

/** Traffic bounds: the loop stops when told, at this deadline, or after this many operations per worker. */
const TRAFFIC_DEADLINE_MS = 40_000;
const MAX_OPERATIONS_PER_WORKER = 5_000;

interface Tally {
  merged: string[];
  refused: string[]; // SERVICE_UNAVAILABLE, nothing written
  unknown: string[]; // SERVICE_UNAVAILABLE, the write may or may not have been applied
  reads: number;
  failedReads: number;
  other: unknown[];
}

describe("Resharding: a tenant's slot moves to another master while it is written", () => {
  let cluster: RedisClusterProcess;
  let store: RedisSessionStore;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    const client = createRedisClient({
      clusterNodes: cluster.ports.map((port) => ({ host: "127.0.0.1", port })),
      logger: pino({ level: "silent" }),
    });
    if (!(await whenReady(client, 10_000))) throw new Error("cluster client not ready");
    store = new RedisSessionStore(client, { defaults: ROOMY, schedule: new RedisCleanupSchedule(client) });
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  it("every merge lands exactly once, reads keep answering, and the slot ends on the target", async () => {
    const tenant = freshTenant();
    for (const ref of seeded) await store.store(tenant, ref, { conversationState: { seeded: true } }, LIMITS);
    const admin = cluster.admin;
    const slot = Number(await admin.cluster("KEYSLOT", settingsKey(tenant)));
    const sourcePort = await cluster.ownerOf(slot);
    const nodes = await cluster.topology();
    const masters = nodes.filter((n) => n.role === "master");
    const source = masters.find((n) => n.port === sourcePort)!;
    const target = masters.find((n) => n.port !== sourcePort)!;
    const keysBefore = Number(await cluster.node(source.port).cluster("COUNTKEYSINSLOT", slot));
    expect(keysBefore).toBeGreaterThanOrEqual(seeded.length + 2 * users.length + 3);

    // Traffic: three workers merge into one hot session, one reads every seeded session in one batch.
    const tally: Tally = { merged: [], refused: [], unknown: [], reads: 0, failedReads: 0, other: [] };
    let stop = false;
    const stopAt = Date.now() + TRAFFIC_DEADLINE_MS;
    const running = () => !stop && Date.now() < stopAt;
    const mergeWorker = async (worker: number) => {
      for (let n = 0; running() && n < MAX_OPERATIONS_PER_WORKER; n++) {
        const entry = `w${worker}-${n}`;
        try {
          await store.merge(tenant, hot, { interruptedQueries: [entry] }, LIMITS);
          tally.merged.push(entry);
        } catch (error) {
          if (!(error instanceof ServiceUnavailableError)) tally.other.push(error);
          else if (error.extensions.outcomeUnknown) tally.unknown.push(entry);
          else tally.refused.push(entry);
        }
      }
    };
    const readWorker = async () => {
      for (let n = 0; running() && n < MAX_OPERATIONS_PER_WORKER; n++) {
        try {
          const records = await store.getMany(tenant, seeded);
          expect(records.every((r) => r !== null)).toBe(true);
          tally.reads++;
        } catch (error) {
          if (!(error instanceof ServiceUnavailableError)) tally.other.push(error);
          tally.failedReads++;
        }
      }
    };
    const traffic = Promise.all([mergeWorker(1), mergeWorker(2), mergeWorker(3), readWorker()]);
    /** Lets the traffic run in the current migration state: until `count` more merges and reads succeeded. */
    const trafficFlows = async (what: string, count = 50) => {
      const merges = tally.merged.length;
      const reads = tally.reads;
      await pollUntil(
        `traffic flows ${what}`,
        () => ({ merged: tally.merged.length - merges, reads: tally.reads - reads }),
        (more) => more.merged >= count && more.reads >= count,
        { timeoutMs: 10_000, intervalMs: 5 },
      );
    };

    const askingBefore = await commandCalls(cluster, target.port, "asking");
    try {
      await trafficFlows("before the move");
      // 1. Mark the slot: the target accepts it (with ASKING), the source hands missing keys over (ASK).
      await cluster.node(target.port).cluster("SETSLOT", slot, "IMPORTING", source.id);
      await cluster.node(source.port).cluster("SETSLOT", slot, "MIGRATING", target.id);
      await trafficFlows("while the slot is marked and its keys are still on the source");
      // 2. Move the keys in batches, back to back, as redis-cli does. A command naming keys on both sides of a
      //    batch gets TRYAGAIN, which ioredis retries shortly.
      for (let batch = 0; ; batch++) {
        const keys = (await cluster.node(source.port).cluster("GETKEYSINSLOT", slot, 4)) as string[];
        if (keys.length === 0) break;
        if (batch > 100) throw new Error("the slot's keys never ran out");
        await cluster.node(source.port).migrate("127.0.0.1", target.port, "", 0, 5000, "KEYS", ...keys);
      }
      // Every key is on the target now, the slot still belongs to the source: the source answers ASK.
      await trafficFlows("while the source redirects with ASK");
      // 3. Hand the slot over: the target first, then the source, then the other masters (MOVED from now on).
      for (const node of [target, source, ...masters.filter((m) => m !== target && m !== source)]) {
        await cluster.node(node.port).cluster("SETSLOT", slot, "NODE", target.id);
      }
      await trafficFlows("after the slot moved");
    } finally {
      stop = true;
      await traffic;
    }

    const final = (await store.getMany(tenant, [hot]))[0]!;
    const attempts = tally.merged.length + tally.refused.length + tally.unknown.length;
    const landedUnknown = tally.unknown.filter((entry) => final.interruptedQueries.includes(entry));
    process.stdout.write(
      `resharding slot ${slot} ${source.port} → ${target.port}: ${attempts} merges (${tally.merged.length} ok, ` +
        `${tally.refused.length} refused, ${tally.unknown.length} unknown outcome of which ${landedUnknown.length} ` +
        `landed), ${tally.reads} batched reads ok, ${tally.failedReads} failed\n`,
    );

    expect(tally.other).toEqual([]);
    // Every successful merge landed once, no refused one landed, and the version counts exactly the writes.
    expect([...final.interruptedQueries].sort()).toEqual([...tally.merged, ...landedUnknown].sort());
    expect(final.version).toBe(1 + tally.merged.length + landedUnknown.length);
    expect(tally.refused.filter((entry) => final.interruptedQueries.includes(entry))).toEqual([]);
    // The traffic went through every state, and the ASK redirections were followed with ASKING on the target.
    expect(await commandCalls(cluster, target.port, "asking")).toBeGreaterThan(askingBefore);
    // The slot now lives on the target, every key with it; every node agrees.
    for (const port of masters.map((m) => m.port)) expect(await cluster.ownerOf(slot, port)).toBe(target.port);
    expect(Number(await cluster.node(source.port).cluster("COUNTKEYSINSLOT", slot))).toBe(0);
    expect(Number(await cluster.node(target.port).cluster("COUNTKEYSINSLOT", slot))).toBe(keysBefore);
    // And the store keeps working on the new owner: reads, listing and purge.
    expect((await store.getMany(tenant, seeded)).every((r) => r !== null)).toBe(true);
    expect((await store.listUserSessions(tenant, "u2", 10)).totalCount).toBe(2);
    expect(await store.purgeOrphans(tenant, 86_400)).toBe(0);
  }, 90_000);
});

async function commandCalls(cluster: RedisClusterProcess, port: number, command: string): Promise<number> {
  const info = await cluster.node(port).info("commandstats");
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}
