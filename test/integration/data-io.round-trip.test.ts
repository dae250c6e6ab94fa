import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { runExport } from "../../src/data/export-command";
import { runImport, type ImportOptions } from "../../src/data/import-command";
import { decodeChangeMessage } from "../../src/live/session-change";
import type { JsonObject } from "../../src/sessions/session-record";
import { changeChannel, CLEANUP_SCHEDULE_KEY, sessionKey, tenantPrefix } from "../../src/store/keys";
import type { RedisClient } from "../../src/store/redis/redis-client";
import { dump, quietDeps, storeOn, TOOL_LIMITS, transferOn, useSourceAndTarget } from "../helpers/data-io";
import type { RedisProcess } from "../helpers/redis-server";
import { freshTenant } from "../helpers/test-server";

/**
 * Export → import into a fresh Redis gives the same sessions: the same document text (contexts exact, key order
 * and numbers included), versions, TTLs within a second, change logs, indexes and cleanup schedule; a second import
 * changes nothing; bad lines are reported with their number and skipped; interrupted runs go on where they stopped.
 */

const LIMITS = { maxContextBytes: TOOL_LIMITS.maxContextBytes };
const tricky: JsonObject = JSON.parse(
  '{"n":[0.30000000000000004,9007199254740991,1e300,-1.5e-300,12345678901234567],"empty":{"o":{},"a":[]},' +
    '"text":"café 😀 \\u0000 \\u2028 مرحبا","__proto__":{"polluted":true},"constructor":1}',
) as JsonObject;

let source: RedisProcess;
let target: RedisProcess;
let sourceClient: RedisClient;
let targetClient: RedisClient;
let dir: string;

useSourceAndTarget("data-io-", (pair) => ({ source, target, sourceClient, targetClient, dir } = pair));

const importOptions = (input: string, more: Partial<ImportOptions> = {}): ImportOptions => ({
  input,
  mode: "skip",
  batch: 50,
  report: undefined,
  restart: false,
  limits: TOOL_LIMITS,
  maxLineBytes: 1024 * 1024,
  ...more,
});

/** A tenant with sessions written by the service itself: stores and merges, tricky ids and values, other TTLs. */
async function seed(tenant: string, sessions: number): Promise<void> {
  const store = storeOn(sourceClient);
  const refs = [
    { userId: "user:{1}", sessionId: "a:b{c}%2A*?[x]\\" },
    { userId: "ユーザー", sessionId: "😀" },
  ];
  for (const ref of refs) {
    await store.store(
      tenant,
      ref,
      { conversationState: tricky, recentInteractions: [tricky], ttlSeconds: 600 },
      LIMITS,
    );
    // Merged keys go last, so "10" follows "n" in the stored text: JavaScript objects would put it first.
    await store.merge(tenant, ref, { conversationState: { "10": "ten" }, interruptedQueries: ["q"] }, LIMITS);
  }
  for (let i = 0; i < sessions; i++) {
    const ref = { userId: `u${i % 7}`, sessionId: `s-${i}` };
    await store.merge(tenant, ref, { conversationState: { step: i }, recentInteractions: [{ i }] }, LIMITS);
    if (i % 3 === 0) await store.merge(tenant, ref, { userPreferences: { lang: "en" }, ttlSeconds: 3600 + i }, LIMITS);
  }
}

/** Every key of the tenant on `redis`, with value and TTL. */
const tenantKeys = (redis: RedisProcess, tenant: string) =>
  dump(redis.admin, `${tenantPrefix(tenant).replace(/[{}]/g, "\\$&")}*`);

function expectSameTenant(
  from: Map<string, { value: string; expiresAt: number }>,
  to: Map<string, { value: string; expiresAt: number }>,
): void {
  expect([...to.keys()].sort()).toEqual([...from.keys()].sort());
  for (const [key, { value, expiresAt }] of from) {
    const copy = to.get(key)!;
    if (expiresAt === -1) expect(copy.expiresAt).toBe(-1);
    else expect(Math.abs(copy.expiresAt - expiresAt)).toBeLessThan(1000);
    if (!key.endsWith(":expiry")) {
      expect([key, copy.value]).toEqual([key, value]);
      continue;
    }
    // Expiry indexes: the same members, expiry times within a second (each Redis's clock read once per step).
    const a = JSON.parse(value) as string[];
    const b = JSON.parse(copy.value) as string[];
    expect(b.filter((_, i) => i % 2 === 0).sort()).toEqual(a.filter((_, i) => i % 2 === 0).sort());
    const scores = new Map(a.flatMap((m, i) => (i % 2 === 0 ? [[m, Number(a[i + 1])]] : [])));
    for (let i = 0; i < b.length; i += 2) expect(Math.abs(Number(b[i + 1]) - scores.get(b[i])!)).toBeLessThan(1000);
  }
}

describe("export → import", () => {
  it("gives the same documents, versions, TTLs, change logs, indexes and schedule in a fresh Redis", async () => {
    const tenant = freshTenant();
    await seed(tenant, 120);
    const file = join(dir, `${tenant}.ndjson`);

    const exported = await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 25 },
      transferOn(sourceClient),
      quietDeps(),
    );
    const imported = await runImport(importOptions(file), transferOn(targetClient), quietDeps());

    expect(exported).toEqual({ counts: { sessions: 122, gone: 0 }, interrupted: false });
    expect(imported.counts).toMatchObject({ lines: 122, written: 122, bad: 0 });
    expectSameTenant(await tenantKeys(source, tenant), await tenantKeys(target, tenant));
    expect(await target.admin.zscore(CLEANUP_SCHEDULE_KEY, tenant)).not.toBeNull();
    // Through the store, as the API reads them: the same records and the same history.
    const ref = { userId: "user:{1}", sessionId: "a:b{c}%2A*?[x]\\" };
    const [before] = await storeOn(sourceClient).getMany(tenant, [ref]);
    const [after] = await storeOn(targetClient).getMany(tenant, [ref]);
    expect(after).toEqual(before);
    expect(after?.conversationState).toEqual({ ...tricky, "10": "ten" });
    expect(await storeOn(targetClient).history(tenant, ref, 10)).toEqual(
      await storeOn(sourceClient).history(tenant, ref, 10),
    );
  });

  it("changes nothing the second time, in every mode", async () => {
    const tenant = freshTenant();
    await seed(tenant, 10);
    const file = join(dir, `${tenant}.ndjson`);
    await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 100 },
      transferOn(sourceClient),
      quietDeps(),
    );
    await runImport(importOptions(file), transferOn(targetClient), quietDeps());
    const first = await tenantKeys(target, tenant);
    const sets = (await target.commandCalls()).set ?? 0;

    for (const mode of ["skip", "overwrite", "newer"] as const) {
      const again = await runImport(importOptions(file, { mode }), transferOn(targetClient), quietDeps());
      expect(again.counts).toMatchObject({ lines: 12, written: 0, unchanged: 12 });
    }

    expect((await target.commandCalls()).set ?? 0).toBe(sets);
    const second = await tenantKeys(target, tenant);
    expect([...second.entries()].map(([k, v]) => [k, v.value])).toEqual(
      [...first.entries()].map(([k, v]) => [k, v.value]),
    );
  });

  it("keeps, replaces, or replaces only with a newer state, as the mode says", async () => {
    const tenant = freshTenant();
    const ref = { userId: "u", sessionId: "s" };
    const store = storeOn(sourceClient);
    await store.merge(tenant, ref, { conversationState: { v: 1 } }, LIMITS);
    const older = join(dir, `${tenant}-older.ndjson`);
    await runExport(
      { tenantId: tenant, userId: "u", out: older, force: false, batch: 10 },
      transferOn(sourceClient),
      quietDeps(),
    );
    await store.merge(tenant, ref, { conversationState: { v: 2 } }, LIMITS);
    const newer = join(dir, `${tenant}-newer.ndjson`);
    await runExport(
      { tenantId: tenant, userId: "u", out: newer, force: false, batch: 10 },
      transferOn(sourceClient),
      quietDeps(),
    );
    const importer = transferOn(targetClient);
    const state = async () => (await storeOn(targetClient).getMany(tenant, [ref]))[0]?.conversationState;

    await runImport(importOptions(newer), importer, quietDeps());
    const skip = await runImport(importOptions(older, { mode: "skip" }), importer, quietDeps());
    expect([skip.counts.kept, await state()]).toEqual([1, { v: 2 }]);
    const notNewer = await runImport(importOptions(older, { mode: "newer" }), importer, quietDeps());
    expect([notNewer.counts.notNewer, await state()]).toEqual([1, { v: 2 }]);
    const overwrite = await runImport(importOptions(older, { mode: "overwrite" }), importer, quietDeps());
    expect([overwrite.counts.written, await state()]).toEqual([1, { v: 1 }]);
    const newerWins = await runImport(importOptions(newer, { mode: "newer" }), importer, quietDeps());
    expect([newerWins.counts.written, await state()]).toEqual([1, { v: 2 }]);
  });

  it("reports bad lines with their number, skips them and writes the rest", async () => {
    const tenant = freshTenant();
    await seed(tenant, 2);
    const file = join(dir, `${tenant}.ndjson`);
    await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 10 },
      transferOn(sourceClient),
      quietDeps(),
    );
    const lines = readFileSync(file, "utf8").trim().split("\n");
    // The session with the tricky context (merged key order, escapes) first.
    const [good, ...rest] = [...lines.filter((l) => l.includes("café")), ...lines.filter((l) => !l.includes("café"))];
    const line = JSON.parse(good) as Record<string, unknown>;
    const variant = (changes: Record<string, unknown>) => JSON.stringify({ ...line, ...changes });
    const bad = [
      '{"tenantId":"x", broken',
      variant({ sessionId: "bad\u0001id" }),
      variant({ sessionId: "big", conversationState: { blob: "x".repeat(TOOL_LIMITS.maxContextBytes) } }),
      variant({ sessionId: "gap", history: (line.history as unknown[]).slice(1) }),
      variant({
        sessionId: "deep",
        conversationState: JSON.parse(
          `${"[".repeat(200)}${"]".repeat(200)}`.replace(/^\[/, '{"a":[').replace(/\]$/, "]}"),
        ),
      }),
      variant({ sessionId: "ttl", ttlSeconds: TOOL_LIMITS.maxTtlSeconds + 1 }),
      "[]",
    ];
    // Another member order, white space and escapes: valid, made canonical with each object's own key order.
    const body = good.slice(good.indexOf(',"version"') + 1, -1).replace(/café/g, "caf\\u00e9");
    const reordered =
      `{ "userId" : ${JSON.stringify(line.userId)} ,\t"sessionId":"pretty", ${body} , ` +
      `"tenantId": ${JSON.stringify(tenant)} }`;
    writeFileSync(file, `${[good, ...bad, "", reordered, ...rest].join("\n")}\n`);
    const report = join(dir, `${tenant}.report.ndjson`);
    const deps = quietDeps();

    const result = await runImport(importOptions(file, { report }), transferOn(targetClient), deps);

    expect(result.counts).toMatchObject({
      lines: 2 + bad.length + rest.length,
      written: 2 + rest.length,
      bad: bad.length,
    });
    const reasons = readFileSync(report, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(reasons.map((r) => r.line)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    expect(reasons.map((r) => r.reason)).toEqual([
      expect.stringContaining("not JSON"),
      "sessionId must not contain control characters",
      expect.stringContaining("over MAX_CONTEXT_BYTES"),
      expect.stringContaining("history.0 has version"),
      expect.stringContaining("nested more than 128 levels"),
      expect.stringContaining("over MAX_TTL_SECONDS"),
      "not a JSON object",
    ]);
    expect(deps.shown).toEqual(reasons.map((r) => `line ${r.line}: ${r.reason}`));
    for (const sessionId of ["big", "gap", "deep", "ttl"])
      expect(await target.admin.exists(sessionKey(tenant, line.userId as string, sessionId))).toBe(0);
    const pretty = await target.admin.get(sessionKey(tenant, line.userId as string, "pretty"));
    const original = await target.admin.get(sessionKey(tenant, line.userId as string, line.sessionId as string));
    expect(pretty).toBe(original);
  });

  it("announces each session it writes as a store, as live updates expect", async () => {
    const tenant = freshTenant();
    const ref = { userId: "watcher", sessionId: "s" };
    await storeOn(sourceClient).merge(tenant, ref, { conversationState: { a: 1 } }, LIMITS);
    const file = join(dir, `${tenant}.ndjson`);
    await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 10 },
      transferOn(sourceClient),
      quietDeps(),
    );
    const subscriber = new Redis(target.url);
    await subscriber.ssubscribe(changeChannel(tenant, ref.userId));
    const message = new Promise<Buffer>((resolve) =>
      subscriber.once("smessageBuffer", (_channel: Buffer, bytes: Buffer) => resolve(bytes)),
    );

    await runImport(importOptions(file), transferOn(targetClient), quietDeps());

    const change = decodeChangeMessage(tenant, await message);
    subscriber.disconnect();
    expect(change).toMatchObject({ type: "UPDATED", ref, version: 1, operation: "STORE" });
    expect(change?.type === "UPDATED" && change.record.conversationState).toEqual({ a: 1 });
  });
});

describe("interrupted runs", () => {
  it("an export goes on where it stopped, with no line twice", async () => {
    const tenant = freshTenant();
    await seed(tenant, 400);
    const file = join(dir, `${tenant}.ndjson`);
    const options = { tenantId: tenant, userId: undefined, out: file, force: false, batch: 50 };

    const first = await runExport(options, transferOn(sourceClient), quietDeps(100));
    const linesAfterFirst = readFileSync(file, "utf8").split("\n").length - 1;
    const second = await runExport(options, transferOn(sourceClient), quietDeps());

    expect(first.interrupted).toBe(true);
    expect(linesAfterFirst).toBeGreaterThan(0);
    expect(linesAfterFirst).toBeLessThan(402);
    expect(second).toMatchObject({ interrupted: false, counts: { sessions: 402 } });
    const ids = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => {
        const { userId, sessionId } = JSON.parse(l) as { userId: string; sessionId: string };
        return `${userId}/${sessionId}`;
      });
    expect(ids).toHaveLength(402);
    expect(new Set(ids).size).toBe(402);
  });

  it("an import goes on from the line it reached", async () => {
    const tenant = freshTenant();
    await seed(tenant, 300);
    const file = join(dir, `${tenant}.ndjson`);
    await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 100 },
      transferOn(sourceClient),
      quietDeps(),
    );
    const bytes = readFileSync(file).length;

    const first = await runImport(importOptions(file), transferOn(targetClient), quietDeps(bytes / 3));
    const second = await runImport(importOptions(file), transferOn(targetClient), quietDeps());

    expect(first.interrupted).toBe(true);
    expect(first.counts.written).toBeLessThan(302);
    // The second run starts after the first one's last batch: nothing is read or written twice.
    expect(second).toMatchObject({ interrupted: false, counts: { lines: 302, written: 302, unchanged: 0 } });
    expectSameTenant(await tenantKeys(source, tenant), await tenantKeys(target, tenant));
  });
});
