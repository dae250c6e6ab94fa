/**
 * `npm run bench` — throughput and latency of the server over HTTP, as a ratio of a bare baseline measured in the
 * same run (the machine is noisy; ratios within one run are what we compare).
 *
 * Starts its own redis-server (test/helpers/redis-server.ts) and seeds BENCH_SESSIONS realistic contexts (100
 * tenants × 50 users × 20 sessions by default, about 1.6 KB of JSON each). Starts the built server (`node
 * dist/main.js`, production mode, gateway auth with a secret) and bench/baseline-server.ts (node:http + one ioredis
 * GET). With `taskset` on PATH, both servers run on core 0, Redis and the load generator (this process, autocannon)
 * on core 1. Every scenario: a short sequential check of the answers with Redis MONITOR on (exact round trips per
 * request), a warm-up, then a measured run with 64 connections. Prints one table and writes
 * bench/results/latest.json. Everything listens on 127.0.0.1 only; child processes are stopped on exit and SIGINT.
 *
 * Environment (all optional): BENCH_SESSIONS (100000), BENCH_DURATION (10 s per scenario), BENCH_WARMUP (2 s),
 * BENCH_SCENARIOS (comma-separated names: a subset), BENCH_SERVER_ENTRY (dist/main.js: a variant to compare),
 * BENCH_NODE_ARGS (extra node flags for the server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`),
 * BENCH_OUTPUT (bench/results/latest.json).
 */
import "reflect-metadata";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import pino from "pino";
import { startRedis, type RedisProcess } from "../test/helpers/redis-server";
import { activityIndexKey, expiryIndexKey, sessionKey, userExpiryKey, userIndexKey } from "../src/store/keys";
import { createRedisClient, whenReady } from "../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../src/store/redis/redis-session-store";
import { DEFAULT_TENANT_SETTINGS } from "../src/tenants/tenant-settings";
import { interaction, MERGE, prng, READ_MANY, READ_ONE, realisticContext, STORE, USER_SESSIONS } from "./workload";

const ROOT = join(__dirname, "..");
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100_000);
const TENANTS = 100;
const SESSIONS_PER_USER = 20;
const USERS_PER_TENANT = Math.max(1, Math.round(SESSIONS / TENANTS / SESSIONS_PER_USER));
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP_S = Number(process.env.BENCH_WARMUP ?? 2);
const CONNECTIONS = 64;
const READ_MANY_COUNT = 20;
const GATEWAY_SECRET = "bench-gateway-secret-not-for-production";
const SERVER_ENTRY = process.env.BENCH_SERVER_ENTRY ?? join(ROOT, "dist", "main.js");
const SERVER_NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
/** The flags `npm start` runs node with (package.json): the bench runs both servers the way production runs. */
const START_NODE_ARGS = startNodeArgs();
const OUTPUT = process.env.BENCH_OUTPUT ?? join(__dirname, "results", "latest.json");
const ONLY = process.env.BENCH_SCENARIOS?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const SEED_IN_FLIGHT = 256;
const CHECKED_REQUESTS = 20;
const MAX_LATENCY_SAMPLES = 5_000_000;
const LIMITS = { maxContextBytes: 262_144 };

// ---------------------------------------------------------------------------------------------------------------
// Child processes: every one is tracked and stopped on exit, on errors and on SIGINT.

const children = new Set<ChildProcess>();
let redisProcess: RedisProcess | undefined;
let redisPid: number | undefined;

process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  if (redisPid !== undefined) {
    try {
      process.kill(redisPid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping the servers and Redis\n`);
    void stopAll().finally(() => process.exit(130));
  });
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child)));
  if (redisProcess) {
    const redis = redisProcess;
    redisProcess = undefined;
    await redis.stop().catch(() => undefined);
    redisPid = undefined;
  }
}

function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

const hasTaskset = spawnSync("taskset", ["-V"], { stdio: "ignore" }).status === 0;

/** Pins a process (every thread of it) to one core; false when taskset is missing or refused. */
function pin(pid: number, core: number): boolean {
  if (!hasTaskset) return false;
  return spawnSync("taskset", ["-a", "-pc", String(core), String(pid)], { stdio: "ignore" }).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** `node --a --b dist/main.js` in package.json's start script → `["--a", "--b"]`. */
function startNodeArgs(): string[] {
  const start = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } }).scripts
    .start;
  const words = start.trim().split(/\s+/);
  if (words[0] !== "node") throw new Error(`package.json start script is not "node … dist/main.js": ${start}`);
  return words.slice(1, -1);
}

interface NodeServer {
  child: ChildProcess;
  port: number;
  /** The last lines it printed (for errors), and how many log lines were warnings or worse. */
  output: string[];
  warnings: number;
}

/** Starts `node <args>` on core 0 (when taskset exists) on a free loopback port; resolves once `readyPath` answers 200. */
async function startNode(
  label: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  readyPath: string,
): Promise<NodeServer> {
  const port = await freePort();
  const command = hasTaskset ? "taskset" : process.execPath;
  const commandArgs = hasTaskset ? ["-c", "0", process.execPath, ...args] : args;
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const server: NodeServer = { child, port, output: [], warnings: 0 };
  const onLine = (line: string) => {
    if (line.trim() === "") return;
    server.output.push(line);
    if (server.output.length > 50) server.output.shift();
    try {
      const level = (JSON.parse(line) as { level?: unknown }).level;
      if ((typeof level === "number" && level >= 40) || level === "warn" || level === "error" || level === "fatal")
        server.warnings++;
    } catch {
      server.warnings++; // not JSON: nothing this server prints should be like that
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let pending = "";
    stream?.on("data", (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split("\n");
      pending = lines.pop() ?? "";
      lines.forEach(onLine);
    });
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${label} exited with ${child.exitCode}:\n${server.output.join("\n")}`);
    if (Date.now() > deadline) throw new Error(`${label} did not become ready in 30 s:\n${server.output.join("\n")}`);
    const status = await fetch(`http://127.0.0.1:${port}${readyPath}`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) return server;
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// The data set.

interface SeededSession {
  tenantId: string;
  userId: string;
  sessionId: string;
}

const tenantId = (t: number) => `tenant-${String(t).padStart(3, "0")}`;
const userId = (t: number, u: number) => `user-${String(t).padStart(3, "0")}-${String(u).padStart(4, "0")}@example.com`;
const sessionId = (t: number, u: number, s: number) =>
  `sess-${(((t * 7919 + u) * 104729 + s * 15485863) >>> 0).toString(16).padStart(8, "0")}-${s}`;

function seededSession(index: number): SeededSession {
  const s = index % SESSIONS_PER_USER;
  const u = Math.floor(index / SESSIONS_PER_USER) % USERS_PER_TENANT;
  const t = Math.floor(index / SESSIONS_PER_USER / USERS_PER_TENANT);
  return { tenantId: tenantId(t), userId: userId(t, u), sessionId: sessionId(t, u, s) };
}

const TOTAL = TENANTS * USERS_PER_TENANT * SESSIONS_PER_USER;

async function seed(store: RedisSessionStore): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < TOTAL; i = next++) {
      const { tenantId: tenant, userId: user, sessionId: session } = seededSession(i);
      await store.store(tenant, { userId: user, sessionId: session }, realisticContext(prng(i + 1)), LIMITS);
    }
  };
  await Promise.all(Array.from({ length: SEED_IN_FLIGHT }, worker));
  return (performance.now() - started) / 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.

interface BenchRequest {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: string;
}

interface Scenario {
  name: string;
  description: string;
  target: "server" | "baseline";
  /** Sessions one request reads or writes (read 20: 20). */
  sessionsPerRequest: number;
  /** The requests one connection cycles through. */
  requests(rand: () => number, connection: number): BenchRequest[];
  /** True for a correct answer; anything else counts as an error. */
  verify(body: string): boolean;
}

const headersFor = (session: SeededSession): Record<string, string> => ({
  "content-type": "application/json",
  "x-gateway-secret": GATEWAY_SECRET,
  "x-tenant-id": session.tenantId,
  "x-user-id": session.userId,
});

const post = (session: SeededSession, query: string, variables: Record<string, unknown>): BenchRequest => ({
  method: "POST",
  path: "/graphql",
  headers: headersFor(session),
  body: JSON.stringify({ query, variables }),
});

const anySession = (rand: () => number) => seededSession(Math.floor(rand() * TOTAL));
/** Index of a random user's first session: that user's sessions are this index and the next SESSIONS_PER_USER - 1. */
const anyUserIndex = (rand: () => number) => Math.floor(rand() * (TOTAL / SESSIONS_PER_USER)) * SESSIONS_PER_USER;
const anyUser = (rand: () => number) => seededSession(anyUserIndex(rand));
const HOT_SESSION = seededSession(0);

const baselinePath = (mode: string, s: SeededSession) =>
  `/${mode}/${encodeURIComponent(s.tenantId)}/${encodeURIComponent(s.userId)}/${encodeURIComponent(s.sessionId)}`;

const mergeInput = (rand: () => number, session: SeededSession, n: number) => ({
  sessionId: session.sessionId,
  conversationState: { step: n % 12, lastIntent: "track_order" },
  recentInteractions: [interaction(rand, Date.UTC(2025, 0, 15, 10) + n * 1000)],
});

const noErrors = (body: string) => !body.includes('"errors"');

const SCENARIOS: Scenario[] = [
  {
    name: "baseline-json",
    description:
      "bare node:http + ioredis GET of one session, JSON.parse + JSON.stringify into the GraphQL answer's shape",
    target: "baseline",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 512 }, () => ({ method: "GET", path: baselinePath("json", anySession(rand)), headers: {} })),
    verify: (body) => body.startsWith('{"data":{"sessionContext":{"id":'),
  },
  {
    name: "baseline-raw",
    description: "bare node:http + ioredis GET of one session, the stored JSON as is (no JSON work)",
    target: "baseline",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 512 }, () => ({ method: "GET", path: baselinePath("raw", anySession(rand)), headers: {} })),
    verify: (body) => body.startsWith('{"version":'),
  },
  {
    name: "read-one",
    description: "sessionContext(sessionId) with every field, the caller's own session, random across the data set",
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 512 }, () => {
        const s = anySession(rand);
        return post(s, READ_ONE, { sessionId: s.sessionId });
      }),
    verify: (body) => body.startsWith('{"data":{"sessionContext":{"id":'),
  },
  {
    name: "read-20",
    description: "20 aliased sessionContext reads (every field) of one user's 20 sessions in one request",
    target: "server",
    sessionsPerRequest: READ_MANY_COUNT,
    requests: (rand) =>
      Array.from({ length: 128 }, () => {
        const base = anyUserIndex(rand);
        const first = seededSession(base);
        const variables: Record<string, string> = {};
        for (let i = 0; i < READ_MANY_COUNT; i++) variables[`s${i}`] = seededSession(base + i).sessionId;
        return post(first, READ_MANY(READ_MANY_COUNT), variables);
      }),
    verify: (body) => body.startsWith('{"data":{"s0":{"id":') && noErrors(body) && !body.includes("null"),
  },
  {
    name: "user-sessions",
    description: "userSessions(first: 20) with every field of each node: one user's newest 20 sessions",
    target: "server",
    sessionsPerRequest: SESSIONS_PER_USER,
    requests: (rand) => Array.from({ length: 256 }, () => post(anyUser(rand), USER_SESSIONS, { first: 20 })),
    verify: (body) => body.startsWith(`{"data":{"userSessions":{"totalCount":${SESSIONS_PER_USER},`) && noErrors(body),
  },
  {
    name: "store",
    description: "storeSessionContext of a fresh ~1.6 KB context over a random existing session",
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 128 }, () => {
        const s = anySession(rand);
        return post(s, STORE, { input: { sessionId: s.sessionId, ...realisticContext(rand) } });
      }),
    verify: (body) => body.startsWith('{"data":{"storeSessionContext":{"id":'),
  },
  {
    name: "merge",
    description: "mergeSessionContext (two state keys, one appended interaction) into a random existing session",
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 256 }, (_, n) => {
        const s = anySession(rand);
        return post(s, MERGE, { input: mergeInput(rand, s, n) });
      }),
    verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
  },
  {
    name: "merge-64-on-one",
    description: "the same merge, all 64 connections into one session (atomicity under contention)",
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 64 }, (_, n) => post(HOT_SESSION, MERGE, { input: mergeInput(rand, HOT_SESSION, n) })),
    verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
  },
  {
    name: "baseline-json-again",
    description: "baseline-json once more at the end: the ratios use the mean of both runs",
    target: "baseline",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 512 }, () => ({ method: "GET", path: baselinePath("json", anySession(rand)), headers: {} })),
    verify: (body) => body.startsWith('{"data":{"sessionContext":{"id":'),
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Measuring.

interface Measured {
  name: string;
  description: string;
  requests: number;
  reqPerSec: number;
  sessionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  errorDetail: {
    non2xx: number;
    connectionErrors: number;
    timeouts: number;
    wrongAnswers: number;
    checkFailures: number;
  };
  /** Top-level Redis commands per request under load, from INFO commandstats (script-internal calls left out). */
  redisRoundTripsPerRequest: number;
  /** Every command Redis ran per request, including those inside scripts. */
  redisCommandsPerRequest: number;
  /** Top-level commands per request seen by MONITOR during the sequential check. */
  redisRoundTripsChecked: number;
  redisCommands: Record<string, number>;
  /** CPU use during the run, % of one core; `core0OthersPercent`: core 0 busy with anything but the server (noise). */
  cpu: { serverPercent: number; redisPercent: number; loadGeneratorPercent: number; core0OthersPercent: number };
  /**
   * Server CPU time per request (µs). Unlike req/s it does not depend on how much of its core the server got, so it
   * is the steadier number on a shared machine; `cpuRatio` is the baseline's per-request CPU over this one.
   */
  serverCpuMicrosPerRequest: number;
  cpuRatio?: number;
  ratio?: number;
  ratioToRaw?: number;
  note?: string;
}

/** Commands the Lua scripts call: under load these are counted as inside a script when scripts ran. */
function scriptCommands(): Set<string> {
  const dir = join(ROOT, "src", "store", "redis", "scripts");
  const names = new Set<string>();
  for (const file of readdirSync(dir)) {
    for (const match of readFileSync(join(dir, file), "utf8").matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"]/g))
      names.add(match[1].toLowerCase());
  }
  return names;
}

function commandDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    if (name === "info") continue; // the bench's own INFO commandstats
    const d = calls - (before[name] ?? 0);
    if (d > 0) delta[name] = d;
  }
  return delta;
}

function roundTrips(delta: Record<string, number>, inScripts: Set<string>): number {
  const scripted = (delta.evalsha ?? 0) + (delta.eval ?? 0) + (delta.fcall ?? 0);
  let total = 0;
  for (const [name, calls] of Object.entries(delta)) if (scripted === 0 || !inScripts.has(name)) total += calls;
  return total;
}

function procCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** Busy seconds of one core (everything but idle and iowait), from /proc/stat. */
function coreBusySeconds(core: number): number {
  const line = readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) return Number.NaN;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info("cpu");
  const value = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
  return value("used_cpu_user") + value("used_cpu_sys");
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface RunResult {
  total: number;
  /** Requests sent, including those still in flight when the run stopped (the server still ran them). */
  sent: number;
  seconds: number;
  latencies: Float64Array;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
}

function runLoad(port: number, scenario: Scenario, seconds: number, seed: number): Promise<RunResult> {
  const rand = prng(seed);
  const pools = Array.from({ length: CONNECTIONS }, (_, c) => scenario.requests(rand, c));
  let nextPool = 0;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${port}`,
        connections: CONNECTIONS,
        duration: seconds,
        timeout: 10,
        setupClient: (client: autocannon.Client) => client.setRequests(pools[nextPool++ % pools.length]),
        verifyBody: scenario.verify,
      },
      (error, result) => {
        if (error) return reject(error);
        const elapsed = (performance.now() - started) / 1000;
        resolve({
          total: count,
          sent: result.requests.sent,
          seconds: Math.min(elapsed, result.duration || elapsed),
          latencies: latencies.slice(0, count).sort(),
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          mismatches: result.mismatches,
        });
      },
    );
    instance.on("response", (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      if (count >= MAX_LATENCY_SAMPLES) return;
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = responseTime;
    });
  });
}

/**
 * Sends a connection's first requests one at a time with MONITOR on: checks each answer and counts the commands
 * that reached Redis from a client (not from inside a script) per request.
 */
async function check(
  port: number,
  scenario: Scenario,
  redisUrl: string,
): Promise<{ failures: string[]; roundTrips: number }> {
  const requests = scenario.requests(prng(999), 0).slice(0, CHECKED_REQUESTS);
  const monitorClient = new Redis(redisUrl);
  const monitor = await monitorClient.monitor();
  let topLevel = 0;
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    // The cleanup scheduler's own ticks (its `scs:cleanup:*` keys) are not the requests' round trips.
    if (source !== "lua" && !args.some((arg) => arg.startsWith("scs:cleanup"))) topLevel++;
  });
  await sleep(50);
  topLevel = 0;
  const failures: string[] = [];
  try {
    for (const request of requests) {
      const res = await fetch(`http://127.0.0.1:${port}${request.path}`, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: AbortSignal.timeout(10_000),
      });
      const body = await res.text();
      if (res.status !== 200 || !scenario.verify(body)) failures.push(`${res.status} ${body.slice(0, 300)}`);
    }
    await sleep(100); // MONITOR lines arrive asynchronously
  } finally {
    monitor.disconnect();
    monitorClient.disconnect();
  }
  return { failures, roundTrips: topLevel / requests.length };
}

async function measure(
  scenario: Scenario,
  port: number,
  redis: RedisProcess,
  serverPid: number,
  inScripts: Set<string>,
  index: number,
): Promise<Measured & { acknowledged: number }> {
  const checked = await check(port, scenario, redis.url);
  if (checked.failures.length > 0)
    process.stderr.write(
      `  ${scenario.name}: ${checked.failures.length} wrong answers in the check, e.g. ${checked.failures[0]}\n`,
    );
  const warm = WARMUP_S > 0 ? await runLoad(port, scenario, WARMUP_S, 1000 + index) : undefined;

  const before = await redis.commandCalls();
  const cpuBefore = {
    server: procCpuSeconds(serverPid),
    redis: await redisCpuSeconds(redis.admin),
    self: process.cpuUsage(),
    core0: coreBusySeconds(0),
  };
  const run = await runLoad(port, scenario, DURATION_S, 2000 + index);
  const cpuAfter = {
    server: procCpuSeconds(serverPid),
    redis: await redisCpuSeconds(redis.admin),
    self: process.cpuUsage(cpuBefore.self),
    core0: coreBusySeconds(0),
  };
  const after = await redis.commandCalls();

  const delta = commandDelta(before, after);
  const commands = Object.values(delta).reduce((a, b) => a + b, 0);
  const reqPerSec = run.total / run.seconds;
  const pct = (seconds: number) => Math.round((seconds / run.seconds) * 100);
  const errorDetail = {
    non2xx: run.non2xx,
    connectionErrors: run.errors,
    timeouts: run.timeouts,
    wrongAnswers: run.mismatches,
    checkFailures: checked.failures.length,
  };
  const acknowledged =
    (warm ? warm.total - warm.non2xx - warm.mismatches : 0) +
    run.total -
    run.non2xx -
    run.mismatches +
    (CHECKED_REQUESTS - checked.failures.length);
  return {
    name: scenario.name,
    description: scenario.description,
    requests: run.total,
    reqPerSec,
    sessionsPerSec: reqPerSec * scenario.sessionsPerRequest,
    p50Ms: percentile(run.latencies, 50),
    p99Ms: percentile(run.latencies, 99),
    errors: run.non2xx + run.errors + run.mismatches + checked.failures.length,
    errorDetail,
    redisRoundTripsPerRequest: roundTrips(delta, inScripts) / run.sent,
    redisCommandsPerRequest: commands / run.sent,
    redisRoundTripsChecked: checked.roundTrips,
    redisCommands: delta,
    cpu: {
      serverPercent: pct(cpuAfter.server - cpuBefore.server),
      redisPercent: pct(cpuAfter.redis - cpuBefore.redis),
      loadGeneratorPercent: pct((cpuAfter.self.user + cpuAfter.self.system) / 1e6),
      core0OthersPercent: Math.max(0, pct(cpuAfter.core0 - cpuBefore.core0 - (cpuAfter.server - cpuBefore.server))),
    },
    serverCpuMicrosPerRequest: ((cpuAfter.server - cpuBefore.server) * 1e6) / run.total,
    acknowledged,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Memory per stored session.

async function memoryReport(admin: Redis, usedBefore: number) {
  const rand = prng(4242);
  let memory = 0;
  let json = 0;
  const SAMPLE = 1000;
  for (let i = 0; i < SAMPLE; i++) {
    const s = anySession(rand);
    const key = sessionKey(s.tenantId, s.userId, s.sessionId);
    memory += Number(await admin.memory("USAGE", key, "SAMPLES", 0));
    json += Number(await admin.strlen(key));
  }
  const perEntry = async (keyOf: (s: SeededSession) => string, samples: number, pickOne: () => SeededSession) => {
    let bytes = 0;
    let entries = 0;
    for (let i = 0; i < samples; i++) {
      const key = keyOf(pickOne());
      bytes += Number(await admin.memory("USAGE", key, "SAMPLES", 0));
      entries += Number(await admin.zcard(key));
    }
    return bytes / entries;
  };
  const tenants = () => seededSession(Math.floor(rand() * TENANTS) * USERS_PER_TENANT * SESSIONS_PER_USER);
  const users = () => anyUser(rand);
  const index = {
    tenantActivity: await perEntry((s) => activityIndexKey(s.tenantId), 10, tenants),
    tenantExpiry: await perEntry((s) => expiryIndexKey(s.tenantId), 10, tenants),
    userSessions: await perEntry((s) => userIndexKey(s.tenantId, s.userId), 200, users),
    userExpiry: await perEntry((s) => userExpiryKey(s.tenantId, s.userId), 200, users),
  };
  const usedAfter = Number(/^used_memory:(\d+)/m.exec(await admin.info("memory"))?.[1]);
  const indexPerSession = Object.values(index).reduce((a, b) => a + b, 0);
  return {
    sampledSessions: SAMPLE,
    jsonBytesPerSession: Math.round(json / SAMPLE),
    memoryUsagePerSessionKey: Math.round(memory / SAMPLE),
    keyOverheadRatio: +(memory / json).toFixed(3),
    indexBytesPerSession: Object.fromEntries(Object.entries(index).map(([k, v]) => [k, Math.round(v)])),
    indexBytesPerSessionTotal: Math.round(indexPerSession),
    totalPerSession: Math.round(memory / SAMPLE + indexPerSession),
    usedMemoryDeltaPerSession: Math.round((usedAfter - usedBefore) / TOTAL),
  };
}

// ---------------------------------------------------------------------------------------------------------------

// Read before the bench pins itself to one core (nproc counts the cores this process may use).
const NPROC = Number(spawnSync("nproc", [], { encoding: "utf8" }).stdout?.trim()) || cpus().length;

function machine(redisVersion: string) {
  const cpuInfo = readFileSync("/proc/cpuinfo", "utf8");
  return {
    nproc: NPROC,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuInfo)?.[1] ?? cpus()[0]?.model ?? "unknown",
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    redis: redisVersion,
    date: new Date().toISOString(),
    pinned: hasTaskset
      ? "server and baseline on core 0; Redis and the load generator (autocannon, this process) on core 1"
      : "not pinned (taskset not found)",
  };
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "–";

function table(rows: Measured[]): string {
  const head = [
    "scenario",
    "req/s",
    "sessions/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "Redis RT/req",
    "cmds/req",
    "vs baseline",
    "server CPU",
    "CPU µs/req",
    "vs baseline by CPU",
  ];
  const lines = rows.map((r) => [
    r.name,
    fmt(r.reqPerSec),
    fmt(r.sessionsPerSec),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    String(r.errors),
    fmt(r.redisRoundTripsPerRequest, 2),
    fmt(r.redisCommandsPerRequest, 2),
    r.ratio === undefined ? "" : fmt(r.ratio, 2),
    `${r.cpu.serverPercent}%`,
    fmt(r.serverCpuMicrosPerRequest),
    r.cpuRatio === undefined ? "" : fmt(r.cpuRatio, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  return [
    row(head),
    `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`,
    ...lines.map(row),
  ].join("\n");
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  pin(process.pid, 1);
  const redis = await startRedis();
  redisProcess = redis;
  const serverInfo = await redis.admin.info("server");
  redisPid = Number(/^process_id:(\d+)/m.exec(serverInfo)?.[1]);
  if (redisPid) pin(redisPid, 1);
  const redisVersion = /^redis_version:(\S+)/m.exec(serverInfo)?.[1] ?? "unknown";
  const usedBefore = Number(/^used_memory:(\d+)/m.exec(await redis.admin.info("memory"))?.[1]);

  process.stdout.write(
    `seeding ${TOTAL.toLocaleString("en-US")} sessions (${TENANTS} tenants × ${USERS_PER_TENANT} users × ${SESSIONS_PER_USER})…\n`,
  );
  const seedClient = createRedisClient({ url: redis.url, logger: pino({ level: "silent" }), commandTimeoutMs: 30_000 });
  await whenReady(seedClient, 5000);
  const seedStore = new RedisSessionStore(seedClient, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(seedClient),
  });
  const seedSeconds = await seed(seedStore);
  await seedStore.close();
  const memory = await memoryReport(redis.admin, usedBefore);
  process.stdout.write(
    `seeded in ${seedSeconds.toFixed(1)} s; ${memory.memoryUsagePerSessionKey} B per session key for ${memory.jsonBytesPerSession} B of JSON\n`,
  );

  const server = await startNode(
    "server",
    [...START_NODE_ARGS, ...SERVER_NODE_ARGS, SERVER_ENTRY],
    {
      REDIS_URL: redis.url,
      LOG_LEVEL: "warn",
      NODE_ENV: "production",
      AUTH_MODE: "gateway",
      GATEWAY_SECRET,
    },
    "/health/ready",
  );
  const first = seededSession(0);
  const baseline = await startNode(
    "baseline",
    [...START_NODE_ARGS, "-r", "ts-node/register/transpile-only", join(__dirname, "baseline-server.ts")],
    { REDIS_URL: redis.url, TS_NODE_PROJECT: join(ROOT, "tsconfig.json") },
    baselinePath("raw", first),
  );

  const inScripts = scriptCommands();
  const selected = SCENARIOS.filter(
    (s) => !ONLY || ONLY.includes(s.name) || (s.name === "baseline-json-again" && ONLY.includes("baseline-json")),
  );
  const rows: Measured[] = [];
  let hot: { versionBefore: number; versionAfter: number; acknowledged: number; documentBytes: number } | undefined;
  for (const [i, scenario] of selected.entries()) {
    const target = scenario.target === "server" ? server : baseline;
    const readHot = async () => {
      const value = await redis.admin.get(sessionKey(HOT_SESSION.tenantId, HOT_SESSION.userId, HOT_SESSION.sessionId));
      return { version: value ? (JSON.parse(value) as { version: number }).version : 0, bytes: value?.length ?? 0 };
    };
    const hotBefore = scenario.name === "merge-64-on-one" ? await readHot() : undefined;
    process.stdout.write(`${scenario.name}…`);
    const result = await measure(scenario, target.port, redis, target.child.pid ?? 0, inScripts, i);
    if (hotBefore) {
      const hotAfter = await readHot();
      hot = {
        versionBefore: hotBefore.version,
        versionAfter: hotAfter.version,
        acknowledged: result.acknowledged,
        documentBytes: hotAfter.bytes,
      };
      result.note = `version +${hotAfter.version - hotBefore.version} for ${result.acknowledged} acknowledged merges (the difference: requests in flight when the load stopped); document now ${hotAfter.bytes} B`;
    }
    const { acknowledged: _acknowledged, ...row } = result;
    rows.push(row);
    process.stdout.write(
      ` ${fmt(row.reqPerSec)} req/s, p50 ${fmt(row.p50Ms, 2)} ms, p99 ${fmt(row.p99Ms, 2)} ms, ${row.errors} errors\n`,
    );
  }

  const baselines = rows.filter((r) => r.name === "baseline-json" || r.name === "baseline-json-again");
  const base = baselines.length ? baselines.reduce((a, r) => a + r.reqPerSec, 0) / baselines.length : Number.NaN;
  const raw = rows.find((r) => r.name === "baseline-raw")?.reqPerSec ?? Number.NaN;
  const baseCpu = baselines.length
    ? baselines.reduce((a, r) => a + r.serverCpuMicrosPerRequest, 0) / baselines.length
    : Number.NaN;
  for (const r of rows) {
    r.ratio = r.reqPerSec / base;
    r.ratioToRaw = r.reqPerSec / raw;
    r.cpuRatio = baseCpu / r.serverCpuMicrosPerRequest;
  }

  const byName = (name: string) => rows.find((r) => r.name === name);
  const readOne = byName("read-one");
  const read20 = byName("read-20");
  const serverCores = hasTaskset ? 1 : NPROC;
  const target = (name: string, met: boolean | undefined, value: string) => ({ name, met: met ?? null, value });
  const writes = ["store", "merge"].map(byName);
  const targets = [
    target(
      "read one ≥ 0.60 of the bare baseline",
      readOne && readOne.ratio! >= 0.6,
      readOne ? `${fmt(readOne.ratio!, 2)} (raw GET: ${fmt(readOne.ratioToRaw!, 2)})` : "not run",
    ),
    target(
      "read 20 ≥ 20,000 sessions/s per server core",
      read20 && read20.sessionsPerSec / serverCores >= 20_000,
      read20 ? `${fmt(read20.sessionsPerSec / serverCores)} sessions/s per core` : "not run",
    ),
    target(
      "read 20 p99 ≤ 3 × p50",
      read20 && read20.p99Ms <= 3 * read20.p50Ms,
      read20 ? `p99/p50 = ${fmt(read20.p99Ms / read20.p50Ms, 2)}` : "not run",
    ),
    ...writes.map((w, i) =>
      target(
        `${["store", "merge"][i]} ≥ 0.8 of read one`,
        w && readOne && w.reqPerSec >= 0.8 * readOne.reqPerSec,
        w && readOne ? fmt(w.reqPerSec / readOne.reqPerSec, 2) : "not run",
      ),
    ),
    target(
      "one Redis round trip per request (reads and writes)",
      rows
        .filter((r) => !r.name.startsWith("baseline"))
        // Exact: MONITOR over sequential requests. The rate over the whole window may read a little above 1,
        // because requests in flight when the window closes send their command but are not counted as done.
        .every((r) => r.redisRoundTripsChecked <= 1 && r.redisRoundTripsPerRequest <= 1.02),
      rows
        .filter((r) => !r.name.startsWith("baseline"))
        .map((r) => `${r.name} ${fmt(r.redisRoundTripsChecked, 2)} (window ${fmt(r.redisRoundTripsPerRequest, 2)})`)
        .join(", "),
    ),
    target(
      "zero errors",
      rows.every((r) => r.errors === 0),
      `${rows.reduce((a, r) => a + r.errors, 0)} in all`,
    ),
  ];

  const result = {
    machine: machine(redisVersion),
    setup: {
      sessions: TOTAL,
      tenants: TENANTS,
      usersPerTenant: USERS_PER_TENANT,
      sessionsPerUser: SESSIONS_PER_USER,
      connections: CONNECTIONS,
      durationSeconds: DURATION_S,
      warmupSeconds: WARMUP_S,
      serverEntry: SERVER_ENTRY.startsWith(ROOT) ? SERVER_ENTRY.slice(ROOT.length + 1) : SERVER_ENTRY,
      serverNodeArgs: [...START_NODE_ARGS, ...SERVER_NODE_ARGS],
      seedSeconds: +seedSeconds.toFixed(1),
      baselineReqPerSec: Math.round(base),
      baselineServerCpuMicrosPerRequest: Math.round(baseCpu),
    },
    scenarios: rows.map((r) => ({
      ...r,
      reqPerSec: Math.round(r.reqPerSec),
      sessionsPerSec: Math.round(r.sessionsPerSec),
      p50Ms: +r.p50Ms.toFixed(2),
      p99Ms: +r.p99Ms.toFixed(2),
      redisRoundTripsPerRequest: +r.redisRoundTripsPerRequest.toFixed(3),
      redisCommandsPerRequest: +r.redisCommandsPerRequest.toFixed(3),
      redisRoundTripsChecked: +r.redisRoundTripsChecked.toFixed(2),
      ratio: +(r.ratio ?? Number.NaN).toFixed(3),
      ratioToRaw: +(r.ratioToRaw ?? Number.NaN).toFixed(3),
      serverCpuMicrosPerRequest: Math.round(r.serverCpuMicrosPerRequest),
      cpuRatio: +(r.cpuRatio ?? Number.NaN).toFixed(3),
    })),
    targets,
    hotSession: hot,
    memory,
    serverWarnings: server.warnings,
    totalSeconds: Math.round((performance.now() - startedAt) / 1000),
  };

  const m = result.machine;
  process.stdout.write(`\n${m.cpuModel}, ${m.nproc} cores, node ${m.node}, Redis ${m.redis}; ${m.pinned}\n`);
  process.stdout.write(
    `${TOTAL.toLocaleString("en-US")} sessions, ${CONNECTIONS} connections, ${DURATION_S} s per scenario after ${WARMUP_S} s warm-up\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  for (const t of targets)
    process.stdout.write(`${t.met === null ? "–" : t.met ? "met   " : "MISSED"}  ${t.name}: ${t.value}\n`);
  process.stdout.write(
    `\nmemory per session: ${memory.memoryUsagePerSessionKey} B (MEMORY USAGE) for ${memory.jsonBytesPerSession} B of JSON (×${memory.keyOverheadRatio}), ` +
      `plus ${memory.indexBytesPerSessionTotal} B of index entries = ${memory.totalPerSession} B; used_memory grew ${memory.usedMemoryDeltaPerSession} B per session\n`,
  );
  if (hot) process.stdout.write(`merge-64-on-one: ${rows.find((r) => r.name === "merge-64-on-one")?.note}\n`);
  if (server.warnings > 0)
    process.stdout.write(`server printed ${server.warnings} warning lines, e.g. ${server.output.at(-1)}\n`);

  mkdirSync(dirname(OUTPUT), { recursive: true });
  writeFileSync(OUTPUT, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nwrote ${OUTPUT.startsWith(ROOT) ? OUTPUT.slice(ROOT.length + 1) : OUTPUT}\n`);
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
