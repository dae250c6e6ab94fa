/**
 * `npm run bench:data-io` — the data tool at scale, each command run as people run it (`node dist/cli.js`, its own
 * process), against redis-servers of its own on free loopback ports:
 *
 * 1. import of BENCH_SESSIONS (default 200,000) sessions of one tenant from a generated export file (1.7 KB contexts,
 *    three change log entries each) into an empty Redis;
 * 2. export of that tenant back to a file;
 * 3. import of that export into another empty Redis (the round trip: the two Redis must then hold the same documents);
 * 4. migrate-legacy of BENCH_LEGACY_KEYS (default 100,000) legacy keys (Python json.dumps text, TTLs) into an empty
 *    Redis.
 *
 * For each: wall time, sessions per second, the tool's peak RSS (VmHWM from /proc, read until it exits) and the
 * slowest single Redis command (SLOWLOG with every command logged). Prints and writes bench/results/data-io.json.
 * Run `npm run build` first (the npm script does).
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Redis } from "ioredis";
import { startRedis, type RedisProcess } from "../test/helpers/redis-server";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200_000);
const LEGACY_KEYS = Number(process.env.BENCH_LEGACY_KEYS ?? 100_000);
const ROOT = join(__dirname, "..");
const TENANT = "bench-tenant";

interface Measured {
  what: string;
  items: number;
  seconds: number;
  perSecond: number;
  peakRssMb: number;
  slowestCommandMicros: number;
  slowestCommand: string;
  exitCode: number | null;
  summary: string;
}

/** A realistic context (about 1.7 KB of JSON) and a history of three merges down from version 3. */
function sessionLine(i: number, now: number): string {
  const conversationState = {
    topic: `billing-${i % 97}`,
    step: i % 17,
    intent: { name: "refund", confidence: 0.9312, slots: { amount: 129.99, currency: "EUR", orderId: `ord-${i}` } },
    summary: "The user asked about a duplicate charge on the last invoice and wants the amount refunded to the card.",
    flags: { escalated: false, vip: i % 11 === 0, language: "en-GB" },
    context: Array.from({ length: 4 }, (_, k) => ({ turn: k, note: `note ${k} for session ${i}`, score: k / 7 })),
  };
  const interruptedQueries = ["what is my balance?", "when does my plan renew?"];
  const recentInteractions = Array.from({ length: 5 }, (_, k) => ({
    role: k % 2 === 0 ? "user" : "assistant",
    text: `message ${k} of session ${i}: ${"lorem ipsum dolor sit amet ".repeat(2)}`,
    at: now - (5 - k) * 1000,
  }));
  const userPreferences = { lang: "en", tz: "Europe/Berlin", notifications: { email: true, sms: false } };
  const lastUpdated = now - (i % 3600) * 1000;
  const history = [3, 2, 1].map((version) =>
    JSON.stringify({
      version,
      at: lastUpdated - (3 - version) * 1000,
      operation: "MERGE",
      actor: `user-${i % 5000}`,
      roles: [],
      ttlSeconds: 86400,
      change: { conversationState: { step: version } },
      undo: { conversationState: [["step", version - 1]] },
    }),
  );
  return (
    `{"tenantId":"${TENANT}","userId":"user-${i % 5000}","sessionId":"session-${i}","version":3,` +
    `"storedAt":${lastUpdated - 2000},"lastUpdated":${lastUpdated},"ttlSeconds":86400,` +
    `"conversationState":${JSON.stringify(conversationState)},"interruptedQueries":${JSON.stringify(interruptedQueries)},` +
    `"recentInteractions":${JSON.stringify(recentInteractions)},"userPreferences":${JSON.stringify(userPreferences)},` +
    `"expiresAt":${lastUpdated + 86_400_000},"remainingTtlMs":${lastUpdated + 86_400_000 - now},"history":[${history.join(",")}]}`
  );
}

/** The legacy service's value: Python's json.dumps (", " and ": " separators, non-ASCII escaped). */
function legacyValue(i: number): string {
  const value = {
    conversation_state: { topic: `billing-${i % 97}`, step: i % 17, note: "caf\u00e9 \ud83d\ude00", amount: 129.99 },
    interrupted_queries: ["what is my balance?"],
    recent_interactions: Array.from({ length: 5 }, (_, k) => ({
      role: "user",
      text: `message ${k} ${"lorem ".repeat(20)}`,
    })),
    user_preferences: { lang: "en", tz: "Europe/Berlin" },
    stored_at: 1796000000 + (i % 1000),
    last_updated: new Date((1796000000 + (i % 1000) + 60) * 1000).toISOString().replace("Z", ""),
  };
  return JSON.stringify(value)
    .replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/,"/g, ', "')
    .replace(/":/g, '": ');
}

async function writeFile(path: string, lines: number, line: (i: number) => string): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < lines; i++) if (!out.write(`${line(i)}\n`)) await once(out, "drain");
  out.end();
  await once(out, "finish");
}

/** Runs `node dist/cli.js …` and measures it. */
async function measure(
  what: string,
  items: number,
  args: string[],
  env: Record<string, string>,
  redis: RedisProcess[],
): Promise<Measured> {
  for (const r of redis) {
    await r.admin.config("SET", "slowlog-log-slower-than", "0");
    await r.admin.config("SET", "slowlog-max-len", "2000000");
    await r.admin.slowlog("RESET");
  }
  const started = performance.now();
  const child = spawn(process.execPath, [join(ROOT, "dist", "cli.js"), ...args, "--progress", "lines"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    process.stderr.write(chunk);
  });
  let peakKb = 0;
  const sample = () => {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (hwm) peakKb = Math.max(peakKb, Number(hwm[1]));
    } catch {
      // gone: the last sample stands
    }
  };
  const timer = setInterval(sample, 50);
  const [exitCode] = (await once(child, "exit")) as [number | null];
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  let slowest = { micros: 0, command: "" };
  for (const r of redis) {
    const found = await slowestCommand(r.admin);
    if (found.micros > slowest.micros) slowest = found;
    await r.admin.config("SET", "slowlog-log-slower-than", "10000");
    await r.admin.slowlog("RESET");
  }
  return {
    what,
    items,
    seconds: +seconds.toFixed(1),
    perSecond: Math.round(items / seconds),
    peakRssMb: +(peakKb / 1024).toFixed(0),
    slowestCommandMicros: slowest.micros,
    slowestCommand: slowest.command,
    exitCode,
    summary: stderr.trim().split("\n").at(-1) ?? "",
  };
}

async function slowestCommand(admin: Redis): Promise<{ micros: number; command: string }> {
  const entries = (await admin.slowlog("GET", 2_000_000)) as [number, number, number, string[]][];
  let worst = { micros: 0, command: "" };
  for (const [, , micros, args] of entries) {
    const name = args[0]?.toLowerCase();
    if (name === "slowlog" || name === "config") continue;
    if (micros > worst.micros) worst = { micros, command: `${args[0]} ${args[1]?.slice(0, 40) ?? ""}`.trim() };
  }
  return worst;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "data-io-bench-"));
  const [first, second, legacySource, legacyTarget] = await Promise.all([
    startRedis(),
    startRedis(),
    startRedis(),
    startRedis(),
  ]);
  try {
    const now = Number((await first.admin.time())[0]) * 1000;
    const generated = join(dir, "generated.ndjson");
    await writeFile(generated, SESSIONS, (i) => sessionLine(i, now));
    const exported = join(dir, "exported.ndjson");

    const results: Measured[] = [];
    results.push(
      await measure(
        "import (generated file into an empty Redis)",
        SESSIONS,
        ["import", "--in", generated],
        { REDIS_URL: first.url },
        [first],
      ),
    );
    results.push(
      await measure(
        "export (one tenant)",
        SESSIONS,
        ["export", "--tenant", TENANT, "--out", exported],
        { REDIS_URL: first.url },
        [first],
      ),
    );
    results.push(
      await measure(
        "import (the export into an empty Redis)",
        SESSIONS,
        ["import", "--in", exported],
        { REDIS_URL: second.url },
        [second],
      ),
    );

    // Legacy keys: 5 tenants, written with pipelines, each with a TTL.
    for (let from = 0; from < LEGACY_KEYS; from += 5000) {
      const pipeline = legacySource.admin.pipeline();
      for (let i = from; i < Math.min(from + 5000, LEGACY_KEYS); i++)
        pipeline.set(
          `tenant:legacy-${i % 5}:user:user-${i % 3000}:session:s:${i}`,
          legacyValue(i),
          "EX",
          86_400 + (i % 3600),
        );
      await pipeline.exec();
    }
    results.push(
      await measure(
        "migrate-legacy",
        LEGACY_KEYS,
        [
          "migrate-legacy",
          "--from",
          legacySource.url,
          "--state",
          join(dir, "migrate.state.json"),
          "--report",
          join(dir, "report.ndjson"),
        ],
        { REDIS_URL: legacyTarget.url },
        [legacySource, legacyTarget],
      ),
    );

    const [keysFirst, keysSecond] = await Promise.all([first.admin.dbsize(), second.admin.dbsize()]);
    const result = {
      machine: `${process.platform} ${process.arch}, node ${process.version}, load average at the end ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
      sessions: SESSIONS,
      legacyKeys: LEGACY_KEYS,
      exportFileMb: +(statSync(exported).size / 1024 / 1024).toFixed(0),
      roundTripSameKeyCount: keysFirst === keysSecond,
      legacySessionsLanded: await legacyTarget.admin.eval(
        "local n = 0 for i = 0, 4 do n = n + redis.call('ZCARD', 'tenant:{legacy-' .. i .. '}:activity') end return n",
        0,
      ),
      results,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    mkdirSync(join(__dirname, "results"), { recursive: true });
    writeFileSync(join(__dirname, "results", "data-io.json"), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await Promise.all([first.stop(), second.stop(), legacySource.stop(), legacyTarget.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
