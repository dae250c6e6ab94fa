import pino from "pino";
import type { JsonObject } from "../../src/sessions/session-record";
import { MAX_LIST_ENTRIES, MAX_OBJECT_KEYS } from "../../src/sessions/json-limits";
import { createRedisClient } from "../../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../../src/store/redis/redis-session-store";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant } from "../helpers/test-server";
import { DEFAULTS } from "../integration/session-store.harness";

/**
 * Noisy neighbours, the Redis side: Redis runs one script at a time, so the longest a single write holds it is
 * every tenant's worst added latency. Each case below is a write a client may send at the largest allowed context
 * (MAX_CONTEXT_BYTES, 256 KB), shaped to make the write script work hardest: as many top-level keys as allowed,
 * values full of brackets (what a scanner must walk), lists at their cap. What is measured is the CPU time Redis's
 * main thread spends on the write (INFO cpu, `used_cpu_*_main_thread`, in µs, less what the INFO itself costs):
 * that is how long the write holds Redis, and unlike a wall-clock time (SLOWLOG, printed beside it) it does not grow
 * when a busy machine deschedules Redis midway. The least of REPEATS runs is kept.
 *
 * The README states the bound measured (5 ms, 7 ms for one shape); the numbers are printed for it. What this test
 * asserts is relative, measured in the same run: each write against the floor, the cheapest write at the largest
 * size (one key merged into one 250 KB string). The same write's Redis CPU moved between 4.0 and 5.5 ms from one CI run to the next on
 * one machine, the floor with it; an absolute bound made the test fail on a slow day, while what it guards against
 * — work that grows with keys, brackets or copies — shows as a multiple of the floor. WRITE_BOUND_FLOORS is the
 * README's 5 ms over the floor, with room for the spread of the minimum of REPEATS runs. The floor was ~1.5 ms
 * (4 floors) until the write script stopped reading an object of few keys whole before slicing the entries it keeps
 * (entries_stored): the floor's one 250 KB entry is now copied into Lua once, not twice, and the floor costs
 * 0.8–1.05 ms where the writes that cannot skip that copy (hundreds of keys) cost what they did, up to 4.3 floors in
 * three runs. One write is allowed more, SCRAMBLED_BOUND_FLOORS: a merge replacing every key in another order than
 * the stored one must build the new object from each patch entry on its own, in the stored order (500 slices of the
 * patch, then joined), on top of walking both entry indexes; measured at 4.2–5.7 floors of the cheaper floor (1.9–4.6
 * of the old one; a 7 ms bound, README).
 */
const WRITE_BOUND_FLOORS = 6;
const SCRAMBLED_BOUND_FLOORS = 8;
const SCRAMBLED_REPLACE = `merge ${MAX_OBJECT_KEYS} keys replacing ${MAX_OBJECT_KEYS}, in the reverse order (no two neighbours in the patch are neighbours in the context)`;
const REPEATS = 7;
const MAX_CONTEXT_BYTES = 262_144;
const LIMITS = { maxContextBytes: MAX_CONTEXT_BYTES };

/** `count` list entries, each `{"a":[{},{},…]}` with `brackets` empty objects: ~3 bytes of brackets each. */
function bracketEntries(count: number, brackets: number): JsonObject[] {
  return Array.from({ length: count }, () => ({ a: Array.from({ length: brackets }, () => ({})) }));
}

/** `n` keys whose values are arrays of `{}`, about `bytes` of JSON in all. */
function bracketObject(n: number, bytes: number, prefix = "k"): JsonObject {
  const perValue = Math.max(1, Math.floor((bytes / n - 12) / 3));
  return Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`${prefix}${i}`, Array.from({ length: perValue }, () => ({}))]),
  );
}

describe("Write cost: no single write holds Redis longer than the stated bound at the largest context", () => {
  let redis: RedisProcess;
  let store: RedisSessionStore;
  let roomy: RedisSessionStore;
  /** The floor's Redis CPU in this run (cases[0]): the unit of the bounds. */
  let floorMs = Number.NaN;
  beforeAll(async () => {
    redis = await startRedis();
    const client = createRedisClient({ url: redis.url, logger: pino({ level: "silent" }), commandTimeoutMs: 10_000 });
    store = new RedisSessionStore(client, { defaults: DEFAULTS, schedule: new RedisCleanupSchedule(client) });
    // Lists capped at the largest cap a tenant may set.
    roomy = new RedisSessionStore(client, {
      defaults: { ...DEFAULTS, maxInterruptedQueries: 10_000, maxRecentInteractions: 10_000 },
      schedule: new RedisCleanupSchedule(client),
    });
    await redis.admin.config("SET", "slowlog-log-slower-than", "0");
    await redis.admin.config("SET", "slowlog-max-len", "1000");
    const [, arrange, write] = cases[0];
    floorMs = (await redisMs(arrange, write)).ms;
  });
  afterAll(async () => {
    await store?.close();
    await redis?.stop();
  });

  /** CPU seconds Redis's main thread has used. */
  async function redisCpu(): Promise<number> {
    const info = await redis.admin.info("cpu");
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)![1]);
    return field("used_cpu_user_main_thread") + field("used_cpu_sys_main_thread");
  }

  /** The least Redis CPU time (ms) of REPEATS runs of `write` on a fresh session made by `arrange`, and SLOWLOG's. */
  async function redisMs(
    arrange: (tenant: string) => Promise<unknown>,
    write: (tenant: string) => Promise<unknown>,
  ): Promise<{ ms: number; wallMs: number; outcome: string }> {
    let best = Infinity;
    let bestWall = Infinity;
    let outcome = "ok";
    for (let i = 0; i < REPEATS; i++) {
      const tenant = freshTenant();
      await arrange(tenant);
      await redis.admin.slowlog("RESET");
      const before = await redisCpu();
      try {
        await write(tenant);
      } catch (error) {
        outcome = error instanceof Error ? error.constructor.name : String(error);
      }
      const after = await redisCpu();
      const info = (await redisCpu()) - after; // what one INFO costs
      best = Math.min(best, (after - before - info) * 1000);
      const entries = (await redis.admin.slowlog("GET", 1000)) as [number, number, number, string[]][];
      const script = entries.filter((e) => /^eval/i.test(String(e[3][0])));
      bestWall = Math.min(bestWall, Math.max(...script.map((e) => e[2] / 1000)));
    }
    return { ms: best, wallMs: bestWall, outcome };
  }

  const ref = { userId: "u", sessionId: "s" };
  const half = Math.floor(MAX_CONTEXT_BYTES / 2) - 2000;
  const cases: [string, (tenant: string) => Promise<unknown>, (tenant: string) => Promise<unknown>][] = [
    [
      "floor: merge one key into one 250 KB string",
      (t) => store.store(t, ref, { conversationState: { s: "x".repeat(250_000) } }, LIMITS),
      (t) => store.merge(t, ref, { conversationState: { one: 1 } }, LIMITS),
    ],
    [
      "floor: merge one key into a 1 KB context",
      (t) => store.store(t, ref, { conversationState: { s: "x".repeat(1000) } }, LIMITS),
      (t) => store.merge(t, ref, { conversationState: { one: 1 } }, LIMITS),
    ],
    [
      `merge ${MAX_OBJECT_KEYS / 2} new keys into ${MAX_OBJECT_KEYS / 2}, values full of brackets (~128 KB each side)`,
      (t) => store.store(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS / 2, half) }, LIMITS),
      (t) => store.merge(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS / 2, half, "j") }, LIMITS),
    ],
    [
      `merge one key into ${MAX_OBJECT_KEYS - 1} keys of ~250 KB of brackets`,
      (t) =>
        store.store(
          t,
          ref,
          { conversationState: bracketObject(MAX_OBJECT_KEYS - 1, MAX_CONTEXT_BYTES - 6000) },
          LIMITS,
        ),
      (t) => store.merge(t, ref, { conversationState: { one: 1 } }, LIMITS),
    ],
    [
      "merge one key into one value of ~250 KB of brackets (in userPreferences)",
      (t) => store.store(t, ref, { userPreferences: bracketObject(1, MAX_CONTEXT_BYTES - 6000) }, LIMITS),
      (t) => store.merge(t, ref, { userPreferences: { one: 1 } }, LIMITS),
    ],
    [
      `merge ${MAX_OBJECT_KEYS} keys replacing ${MAX_OBJECT_KEYS} (every old value goes to the change log)`,
      (t) => store.store(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS, half) }, LIMITS),
      (t) => store.merge(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS, half) }, LIMITS),
    ],
    [
      SCRAMBLED_REPLACE,
      (t) => store.store(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS, half) }, LIMITS),
      (t) =>
        store.merge(
          t,
          ref,
          { conversationState: Object.fromEntries(Object.entries(bracketObject(MAX_OBJECT_KEYS, half)).reverse()) },
          LIMITS,
        ),
    ],
    [
      "store ~250 KB of brackets over ~250 KB of brackets (history keeps what it replaced)",
      (t) => store.store(t, ref, { conversationState: bracketObject(1, MAX_CONTEXT_BYTES - 6000) }, LIMITS),
      (t) => store.store(t, ref, { conversationState: bracketObject(1, MAX_CONTEXT_BYTES - 6000, "j") }, LIMITS),
    ],
    [
      `merge ${MAX_OBJECT_KEYS} keys into ${MAX_OBJECT_KEYS} others: refused, over the key limit`,
      (t) => store.store(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS, 20_000) }, LIMITS),
      (t) => store.merge(t, ref, { conversationState: bracketObject(MAX_OBJECT_KEYS, 20_000, "j") }, LIMITS),
    ],
  ];

  it.each(cases)("%s", async (_name, arrange, write) => {
    const { ms, wallMs, outcome } = await redisMs(arrange, write);
    process.stdout.write(
      `write cost: ${_name}: ${ms.toFixed(2)} ms of Redis CPU, ${wallMs.toFixed(2)} ms wall (${outcome})\n`,
    );
    const floors = _name === SCRAMBLED_REPLACE ? SCRAMBLED_BOUND_FLOORS : WRITE_BOUND_FLOORS;
    expect(ms).toBeLessThanOrEqual(floors * floorMs);
  });

  // Lists: a write adds at most MAX_LIST_ENTRIES entries, so it drops at most that many beyond the cap.
  const listCases: [string, (tenant: string) => Promise<unknown>, (tenant: string) => Promise<unknown>][] = [
    [
      `store a list of ${MAX_LIST_ENTRIES} \`{}\` entries at the default cap of 100`,
      async () => undefined,
      (t) => store.store(t, ref, { recentInteractions: Array.from({ length: MAX_LIST_ENTRIES }, () => ({})) }, LIMITS),
    ],
    [
      "merge 100 entries into 100 at the cap, each old entry ~2.5 KB of brackets",
      (t) => store.store(t, ref, { recentInteractions: bracketEntries(100, 800) }, LIMITS),
      (t) => store.merge(t, ref, { recentInteractions: Array.from({ length: 100 }, (_, i) => ({ i })) }, LIMITS),
    ],
    [
      `store ${MAX_LIST_ENTRIES} entries holding ~230 KB of brackets at the default cap of 100 (${MAX_LIST_ENTRIES - 100} dropped)`,
      async () => undefined,
      (t) => store.store(t, ref, { recentInteractions: bracketEntries(MAX_LIST_ENTRIES, 75) }, LIMITS),
    ],
    [
      "merge 99 entries into 100 at the cap, each old entry ~2.4 KB of brackets (99 dropped)",
      (t) => store.store(t, ref, { recentInteractions: bracketEntries(100, 800) }, LIMITS),
      (t) => store.merge(t, ref, { recentInteractions: Array.from({ length: 99 }, (_, i) => ({ i })) }, LIMITS),
    ],
    [
      "merge one entry into 10,000 at a cap of 10,000",
      (t) => roomy.store(t, ref, { recentInteractions: Array.from({ length: 10_000 }, (_, i) => ({ i })) }, LIMITS),
      (t) => roomy.merge(t, ref, { recentInteractions: [{ i: -1 }] }, LIMITS),
    ],
  ];

  it.each(listCases)("%s", async (_name, arrange, write) => {
    const { ms, wallMs, outcome } = await redisMs(arrange, write);
    process.stdout.write(
      `write cost: ${_name}: ${ms.toFixed(2)} ms of Redis CPU, ${wallMs.toFixed(2)} ms wall (${outcome})\n`,
    );
    expect(outcome).toBe("ok");
    expect(ms).toBeLessThanOrEqual(WRITE_BOUND_FLOORS * floorMs);
  });
});
