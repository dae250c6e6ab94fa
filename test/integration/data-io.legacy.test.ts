import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { runMigrateLegacy, type MigrateOptions } from "../../src/data/migrate-legacy-command";
import { CLEANUP_SCHEDULE_KEY, sessionKey } from "../../src/store/keys";
import type { RedisClient } from "../../src/store/redis/redis-client";
import { dump, quietDeps, storeOn, transferOn, useSourceAndTarget } from "../helpers/data-io";
import { pollUntil } from "../helpers/poll";
import type { RedisProcess } from "../helpers/redis-server";

/**
 * migrate-legacy on a generated legacy data set with tricky values: what the contract promises lands exactly, what
 * cannot be moved is reported with its key and reason, the source is only read, a dry run writes nothing, and an
 * interrupted migration goes on where it stopped.
 */

const LIMITS = { maxContextBytes: 4096, maxTtlSeconds: 2_592_000, ttlIfNone: 7200 };

let source: RedisProcess;
let target: RedisProcess;
let sourceClient: RedisClient;
let targetClient: RedisClient;
let dir: string;

useSourceAndTarget("legacy-", (pair) => ({ source, target, sourceClient, targetClient, dir } = pair));

/** A Python json.dumps of `value` (", " and ": " separators, non-ASCII escaped). */
const py = (value: unknown) =>
  JSON.stringify(value)
    .replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/,"/g, ', "')
    .replace(/":/g, '": ');

/**
 * The legacy data set of one test: tenant ids all hold `p`, so the test's --match sees only its own keys. Returns
 * the ids of the sessions that must land and the keys that must be reported.
 */
async function seedLegacy(p: string) {
  const admin = source.admin;
  const set = (key: string, value: string, ttlMs?: number) =>
    ttlMs === undefined ? admin.set(key, value) : admin.set(key, value, "PX", ttlMs);
  const full = {
    conversation_state: { z: 1, "1": "one", pi: 0.30000000000000004, big: 12345678901234568, text: "café 😀 مرحبا" },
    interrupted_queries: ["what's my balance?"],
    recent_interactions: [{ role: "user", text: "hi" }, {}],
    user_preferences: { lang: "en", empty: {}, list: [] },
    stored_at: "2026-11-30T10:20:30.123456",
    last_updated: "2026-11-30T12:20:31+02:00",
  };
  // Python writes the integer as it is, 12345678901234567 (a double cannot hold it: the literal above is the double) and
  // keeps its dict's key order ("z" before "1", which a JavaScript object would swap).
  await set(
    `tenant:${p}-a:user:alice:session:s1`,
    py(full).replace("12345678901234568", "12345678901234567").replace('"1": "one", "z": 1', '"z": 1, "1": "one"'),
    3_600_000,
  );
  await set(
    `tenant:${p}:co:lon:user:bob:session:x:y`,
    py({ conversation_state: { a: 1 }, last_updated: 1796000000 }),
    600_000,
  );
  await set(
    `tenant:${p}{brace}:user:{u}:session:{s}`,
    py({ conversation_state: {}, stored_at: 1796000000.25 }),
    600_000,
  );
  await set(`tenant:${p}-a:user:carol:session:empty`, "{}", 600_000);
  await set(`tenant:${p}-a:user:dave:session:forever`, py({ user_preferences: { x: 1 } }));
  await set(
    `tenant:${p}-t:user:a:user:b:session:c`,
    py({ tenant_id: `${p}-t`, user_id: "a:user:b", session_id: "c", conversation_state: { named: true } }),
    600_000,
  );
  const bad: [string, string][] = [
    [`tenant:${p}-t:user:x:user:y:session:z`, "splits into ids"],
    [`tenant:${p}-a:user:bad:session:notjson`, "value is not JSON"],
    [`tenant:${p}-a:user:bad:session:nan`, "value is not JSON"],
    [`tenant:${p}-a:user:bad:session:list`, "conversation_state is not a JSON object"],
    [`tenant:${p}-a:user:bad:session:queries`, "interrupted_queries is not a list of strings"],
    [`tenant:${p}-a:user:bad:session:big`, "over MAX_CONTEXT_BYTES"],
    [`tenant:${p}-a:user:bad:session:time`, "last_updated"],
    [`tenant:${p}-a:user:bad\u0001:session:id`, "user id must not contain control characters"],
    [`tenant:${p}-a:user:bad:session:hash`, "cannot be read as a string"],
  ];
  await set(bad[0][0], py({ conversation_state: {} }), 600_000);
  await set(bad[1][0], "not json", 600_000);
  await set(bad[2][0], '{"conversation_state": {"a": NaN}}', 600_000);
  await set(bad[3][0], py({ conversation_state: [1] }), 600_000);
  await set(bad[4][0], py({ interrupted_queries: [1] }), 600_000);
  await set(bad[5][0], py({ conversation_state: { blob: "x".repeat(5000) } }), 600_000);
  await set(bad[6][0], py({ last_updated: "yesterday" }), 600_000);
  await set(bad[7][0], py({}), 600_000);
  await admin.hset(bad[8][0], "a", "1");
  // Expired keys: gone before the migration reads them.
  await set(`tenant:${p}-a:user:gone:session:1`, py({}), 1);
  await pollUntil(
    "the short-lived key expired",
    async () => (await admin.exists(`tenant:${p}-a:user:gone:session:1`)) === 0,
    {
      timeoutMs: 2000,
      intervalMs: 5,
    },
  );
  // A session of this service itself, which the pattern matches too: left alone, not reported.
  await storeOn(sourceClient).merge(`${p}-own`, { userId: "u", sessionId: "s" }, { conversationState: {} }, LIMITS);
  return {
    full,
    movable: [
      { tenantId: `${p}-a`, userId: "alice", sessionId: "s1" },
      { tenantId: `${p}:co:lon`, userId: "bob", sessionId: "x:y" },
      { tenantId: `${p}{brace}`, userId: "{u}", sessionId: "{s}" },
      { tenantId: `${p}-a`, userId: "carol", sessionId: "empty" },
      { tenantId: `${p}-a`, userId: "dave", sessionId: "forever" },
      { tenantId: `${p}-t`, userId: "a:user:b", sessionId: "c" },
    ],
    bad,
  };
}

const options = (p: string, more: Partial<MigrateOptions> = {}): MigrateOptions => ({
  sourceLabel: source.url,
  match: `tenant:*${p}*:user:*:session:*`,
  dryRun: false,
  mode: "skip",
  batch: 100,
  report: undefined,
  statePath: join(dir, `${p}.state.json`),
  restart: false,
  legacy: LIMITS,
  ...more,
});

describe("migrate-legacy", () => {
  it("lands the legacy contexts exactly, reports what it cannot move, and only reads the source", async () => {
    const p = randomUUID();
    const { full, movable, bad } = await seedLegacy(p);
    const before = await dump(source.admin, "*");
    const writesBefore = await writeCalls(source);
    const report = join(dir, `${p}.report.ndjson`);

    const result = await runMigrateLegacy(options(p, { report }), sourceClient, transferOn(targetClient), quietDeps());

    expect(result.counts).toMatchObject({ written: movable.length, bad: bad.length, ownLayout: 1, expired: 0 });
    const store = storeOn(targetClient);
    const [alice] = await store.getMany(`${p}-a`, [{ userId: "alice", sessionId: "s1" }]);
    expect(alice).toMatchObject({
      version: 1,
      conversationState: { ...full.conversation_state, big: 12345678901234568 },
      interruptedQueries: full.interrupted_queries,
      recentInteractions: full.recent_interactions,
      userPreferences: full.user_preferences,
      storedAt: new Date("2026-11-30T10:20:30.123Z"),
      lastUpdated: new Date("2026-11-30T10:20:31Z"),
    });
    // The text keeps Python's key order ("1" after "z"), the 17-digit double, and unicode unescaped.
    const stored = await target.admin.get(sessionKey(`${p}-a`, "alice", "s1"));
    expect(stored).toContain(
      '"conversationState":{"z":1,"1":"one","pi":0.30000000000000004,"big":12345678901234568,"text":"café 😀 مرحبا"}',
    );
    // The expiry is the source key's: within a second.
    const sourceExpiry = before.get(`tenant:${p}-a:user:alice:session:s1`)!.expiresAt;
    const targetExpiry = Number(await target.admin.call("PEXPIRETIME", sessionKey(`${p}-a`, "alice", "s1")));
    expect(Math.abs(targetExpiry - sourceExpiry)).toBeLessThan(1000);
    for (const ids of movable) {
      const [record] = await store.getMany(ids.tenantId, [ids]);
      expect(record).toMatchObject({ ...ids, version: 1 });
      const page = await store.listUserSessions(ids.tenantId, ids.userId, 10);
      expect(page.entries.map((entry) => entry.record?.sessionId)).toEqual([ids.sessionId]);
      expect(await target.admin.zscore(CLEANUP_SCHEDULE_KEY, ids.tenantId)).not.toBeNull();
    }
    const [empty] = await store.getMany(`${p}-a`, [{ userId: "carol", sessionId: "empty" }]);
    expect(empty).toMatchObject({
      conversationState: {},
      interruptedQueries: [],
      recentInteractions: [],
      userPreferences: {},
    });
    const [forever] = await store.getMany(`${p}-a`, [{ userId: "dave", sessionId: "forever" }]);
    expect(forever?.ttlSeconds).toBe(LIMITS.ttlIfNone);

    const lines = readFileSync(report, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, string>);
    const problems = new Map(lines.filter((l) => l.reason).map((l) => [l.key, l.reason]));
    expect(problems.size).toBe(bad.length);
    for (const [key, reason] of bad) expect([key, problems.get(key)]).toEqual([key, expect.stringContaining(reason)]);
    const notes = new Map(lines.filter((l) => l.note).map((l) => [l.key, l.note]));
    expect(notes.get(`tenant:${p}-a:user:alice:session:s1`)).toContain("1 integer(s) longer than a double holds");
    expect(notes.get(`tenant:${p}-a:user:carol:session:empty`)).toContain("stored_at and last_updated missing");
    expect(notes.get(`tenant:${p}-a:user:dave:session:forever`)).toContain("no TTL at the source");

    // The source: every key, value and expiry as before, and no write command ran on it.
    const after = await dump(source.admin, "*");
    expect([...after.entries()]).toEqual([...before.entries()]);
    expect(await writeCalls(source)).toEqual(writesBefore);
  });

  it("writes nothing in a dry run, and reports the same", async () => {
    const p = randomUUID();
    const { movable, bad } = await seedLegacy(p);
    const keysBefore = await target.admin.dbsize();

    const result = await runMigrateLegacy(options(p, { dryRun: true }), sourceClient, undefined, quietDeps());

    expect(result.counts).toMatchObject({ written: movable.length, bad: bad.length });
    expect(await target.admin.dbsize()).toBe(keysBefore);
  });

  it("goes on where an interrupted migration stopped, writing no session twice", async () => {
    const p = randomUUID();
    const { movable } = await seedLegacy(p);
    // Many more keys, so that the scan takes several steps.
    const pipeline = source.admin.pipeline();
    for (let i = 0; i < 300; i++)
      pipeline.set(`tenant:${p}-bulk:user:u${i % 9}:session:${i}`, '{"conversation_state": {"i": 1}}', "EX", 600);
    await pipeline.exec();

    const first = await runMigrateLegacy(
      options(p, { batch: 20 }),
      sourceClient,
      transferOn(targetClient),
      quietDeps(40),
    );
    const second = await runMigrateLegacy(
      options(p, { batch: 20 }),
      sourceClient,
      transferOn(targetClient),
      quietDeps(),
    );

    expect(first.interrupted).toBe(true);
    expect(second.interrupted).toBe(false);
    expect(second.counts.written).toBe(movable.length + 300);
    expect(second.counts.unchanged).toBe(0);
    expect(await target.admin.zcard(`tenant:{${p}-bulk}:activity`)).toBe(300);
  });
});

/** Calls of commands that write, on `redis`. */
async function writeCalls(redis: RedisProcess): Promise<Record<string, number>> {
  const calls = await redis.commandCalls();
  const writes = [
    "set",
    "del",
    "hset",
    "zadd",
    "expire",
    "pexpire",
    "rpush",
    "lpush",
    "evalsha",
    "eval",
    "unlink",
    "rename",
  ];
  return Object.fromEntries(writes.map((name) => [name, calls[name] ?? 0]));
}
