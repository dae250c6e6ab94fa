/**
 * `npm run bench` — throughput and latency of the server over HTTP, as a ratio of a bare baseline measured in the
 * same run (the machine is noisy; ratios within one run are what we compare).
 *
 * Starts its own redis-server (test/helpers/redis-server.ts) and seeds BENCH_SESSIONS realistic contexts (100
 * tenants × 50 users × 20 sessions by default, about 1.6 KB of JSON each) and BENCH_LARGE_SESSIONS ~64 KB ones (10
 * tenants × 10 users × 20 sessions by default). Starts the built server (`node dist/main.js`, production mode,
 * gateway auth with a secret), bench/baseline-server.ts (node:http + one ioredis GET) and, when a peer scenario
 * runs, bench/peer-server.ts (Mercurius + graphql-jit). With `taskset` on PATH, the servers run on core 0, Redis and
 * the load generator (this process, autocannon, and merge-watched's subscribers) on core 1. Every scenario: a short
 * sequential check of the answers with Redis MONITOR on (exact round trips per request; the peer's answers compared
 * byte for byte with the server's), a warm-up, then a measured run with 64 connections. Prints one table with the
 * ratios by server CPU per request and the targets of issue 14, and writes bench/results/latest.json. Everything
 * listens on 127.0.0.1 only; child processes are stopped on exit and SIGINT.
 *
 * Environment (all optional): BENCH_SESSIONS (100000), BENCH_LARGE_SESSIONS (2000), BENCH_DURATION (10 s per
 * scenario), BENCH_WARMUP (2 s), BENCH_SCENARIOS (comma-separated names: a subset, with the scenarios their ratios
 * need), BENCH_SERVER_ENTRY (dist/main.js: a variant to compare),
 * BENCH_NODE_ARGS (extra node flags for the server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`),
 * BENCH_OUTPUT (bench/results/latest.json), BENCH_COMPARE_ENTRY (another build's dist/main.js: the merge scenario
 * alternates between its server and this one, BENCH_COMPARE_ROUNDS times, default 3), BENCH_LIVE_RATE (1000 merges/s
 * in live-delivery).
 *
 * Live updates (live.ts), after the HTTP scenarios: `merge-compare` (with BENCH_COMPARE_ENTRY), `live-delivery` (1,000
 * subscribers of the server while merges run at 1,000/s) and `live-memory` (idle subscribers, measured on a server of
 * their own started with its inspector on, for a full GC). BENCH_SCENARIOS names them like the others.
 *
 * The parts: settings.ts (the environment), processes.ts (child processes, pinning), seed.ts (the data set and its
 * seeding), memory.ts (Redis memory per session), scenarios.ts (what is asked and what a right answer is),
 * measure.ts (one scenario's check, warm-up and measured run), report.ts (ratios, targets, table and JSON), live.ts,
 * live-client.ts and inspector.ts (live updates), live-report.ts (their targets and lines).
 */
import "reflect-metadata";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { freePort, startRedis } from "../test/helpers/redis-server";
import { IDLE_SUBSCRIBERS, measureIdleMemory, measureLiveDelivery, Watchers, type WatchedDelivery } from "./live";
import { compareMerges, compareRowName, liveTargets, type LiveResults, type ScriptTimes } from "./live-report";
import { commandTimes, measure, scriptCommands, type Measured } from "./measure";
import { RedisCleanupSchedule } from "../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../src/store/redis/redis-session-store";
import { DEFAULT_TENANT_SETTINGS } from "../src/tenants/tenant-settings";
import { historyMemoryReport, memoryReport, usedMemory, type MemoryReport } from "./memory";
import { BenchProcesses, startNodeArgs, type NodeServer } from "./processes";
import {
  benchResult,
  compareToBaseline,
  countCores,
  printSummary,
  progressLine,
  targetsMet,
  writeResult,
  type HotSession,
} from "./report";
import { baselinePath, GATEWAY_SECRET, hotSession, mergeFields, scenarios, selectScenarios } from "./scenarios";
import { DataSet, meanDocumentBytes, seed, storedVersion } from "./seed";
import { fromRoot, readSettings, ROOT, type BenchSettings } from "./settings";
import { largeContext } from "./workload";

async function main(settings: BenchSettings, processes: BenchProcesses): Promise<void> {
  const startedAt = performance.now();
  /** The flags `npm start` runs node with (package.json): the bench runs both servers the way production runs. */
  const startArgs = startNodeArgs(ROOT);
  const nproc = countCores(); // before this process pins itself to one core, which its children would inherit
  processes.pin(process.pid, 1);
  const redis = await startRedis();
  const redisInfo = await processes.adoptRedis(redis);
  if (redisInfo.pid) processes.pin(redisInfo.pid, 1);
  const usedBefore = await usedMemory(redis.admin);

  const data = new DataSet(settings.sessions);
  process.stdout.write(
    `seeding ${data.total.toLocaleString("en-US")} sessions (${data.tenants} tenants × ${data.usersPerTenant} users × ${data.sessionsPerUser})…\n`,
  );
  const seedSeconds = await seed(redis.url, data);
  const memory: MemoryReport = await memoryReport(redis.admin, data, usedBefore);
  const sessions = new RedisSessionStore(redis.admin, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(redis.admin),
  });
  memory.history = await historyMemoryReport(
    redis.admin,
    data,
    async (s, fields) => void (await sessions.merge(s.tenantId, s, fields, { maxContextBytes: 262_144 })),
    mergeFields,
  );
  process.stdout.write(
    `seeded in ${seedSeconds.toFixed(1)} s; ${memory.memoryUsagePerSessionKey} B per session key for ${memory.jsonBytesPerSession} B of JSON\n`,
  );
  // The ~64 KB set after the memory report, which measures the ~1.7 KB set alone.
  const large = new DataSet(settings.largeSessions, { tenants: 10, tenantPrefix: "large", context: largeContext });
  const largeSeedSeconds = await seed(redis.url, large);
  const largeBytes = { seeded: await meanDocumentBytes(redis.admin, large), afterMerges: Number.NaN };
  process.stdout.write(
    `seeded ${large.total.toLocaleString("en-US")} large sessions (${large.tenants} tenants × ${large.usersPerTenant} users × ${large.sessionsPerUser}, ${largeBytes.seeded} B each on average) in ${largeSeedSeconds.toFixed(1)} s\n`,
  );

  const serverEnv = {
    REDIS_URL: redis.url,
    LOG_LEVEL: "warn",
    NODE_ENV: "production",
    AUTH_MODE: "gateway",
    GATEWAY_SECRET,
  };
  const server = await processes.startNode(
    "server",
    [...startArgs, ...settings.serverNodeArgs, settings.serverEntry],
    serverEnv,
    "/health/ready",
  );
  const baseline = await processes.startNode(
    "baseline",
    [...startArgs, "-r", "ts-node/register/transpile-only", join(__dirname, "baseline-server.ts")],
    { REDIS_URL: redis.url, TS_NODE_PROJECT: join(ROOT, "tsconfig.json") },
    baselinePath("raw", data.session(0)),
  );

  const selected = selectScenarios(scenarios(data, large), settings.scenarios);
  const peer = selected.some((s) => s.target === "peer")
    ? await processes.startNode(
        "peer",
        [...startArgs, "-r", "ts-node/register/transpile-only", join(__dirname, "peer-server.ts")],
        { REDIS_URL: redis.url, GATEWAY_SECRET, TS_NODE_PROJECT: join(ROOT, "tsconfig.json") },
        "/health",
      )
    : undefined;

  const inScripts = scriptCommands(ROOT);
  const hot = hotSession(data);
  const rows: Measured[] = [];
  let hotResult: HotSession | undefined;
  let watchedDelivery: WatchedDelivery | undefined;
  for (const [index, scenario] of selected.entries()) {
    const target = scenario.target === "server" ? server : scenario.target === "peer" ? peer! : baseline;
    const hotBefore = scenario.name === "merge-64-on-one" ? await storedVersion(redis.admin, hot) : undefined;
    process.stdout.write(`${scenario.name}…`);
    const watchers = scenario.watched ? await Watchers.open(server.port, scenario.watched) : undefined;
    let result: Awaited<ReturnType<typeof measure>>;
    try {
      result = await measure(scenario, {
        port: target.port,
        pid: target.child.pid ?? 0,
        redis,
        inScripts,
        index,
        serverPort: server.port,
        ...durations(settings),
      });
      if (watchers) {
        watchedDelivery = await watchers.delivered(result.acknowledged);
        const w = watchedDelivery;
        result.errors += w.missing + w.closedEarly + w.unexpected.length;
        result.note = `${w.subscribers} subscribers on ${w.connections} connections: ${w.received} events for ${w.acknowledged} acknowledged merges, ${w.missing} missing, ${w.unexpected.length} unexpected frames, ${w.closedEarly} connections closed early`;
      }
    } finally {
      await watchers?.close(server.port);
    }
    if (hotBefore) {
      const hotAfter = await storedVersion(redis.admin, hot);
      hotResult = {
        versionBefore: hotBefore.version,
        versionAfter: hotAfter.version,
        acknowledged: result.acknowledged,
        documentBytes: hotAfter.bytes,
      };
      result.note = `version +${hotAfter.version - hotBefore.version} for ${result.acknowledged} acknowledged merges (the difference: requests in flight when the load stopped); document now ${hotAfter.bytes} B`;
    }
    if (scenario.name === "merge-64k") {
      largeBytes.afterMerges = await meanDocumentBytes(redis.admin, large);
      result.note = `the ~64 KB documents: ${largeBytes.seeded} B on average when seeded, ${largeBytes.afterMerges} B after the merges (each appends a ~180 B interaction and, at the cap of 100, drops the oldest ~370 B one)`;
    }
    const { acknowledged: _acknowledged, ...row } = result;
    rows.push(row);
    process.stdout.write(progressLine(row));
  }

  const wants = (name: string) => !settings.scenarios || settings.scenarios.includes(name);
  const scriptTimes: ScriptTimes = {};
  const measureOn = async (name: string, on: NodeServer, index: number) => {
    const merge = scenarios(data, large).find((s) => s.name === "merge")!;
    process.stdout.write(`${name}…`);
    const before = await commandTimes(redis.admin);
    const { acknowledged: _acknowledged, ...row } = await measure(
      { ...merge, name },
      { port: on.port, pid: on.child.pid ?? 0, redis, inScripts, index, ...durations(settings) },
    );
    const after = await commandTimes(redis.admin);
    const perCall = (command: string) =>
      (after[command]?.usec - (before[command]?.usec ?? 0)) / (after[command]?.calls - (before[command]?.calls ?? 0));
    scriptTimes[name] = { script: perCall("evalsha"), spublish: perCall("spublish") };
    rows.push(row);
    process.stdout.write(progressLine(row));
  };
  const live: LiveResults = {};
  if (settings.compareEntry && wants("merge-compare")) {
    const other = await processes.startNode(
      "compare",
      [...startArgs, settings.compareEntry],
      serverEnv,
      "/health/ready",
    );
    // A B, B A, A B, …: a drift of the machine over the rounds weighs on both builds alike.
    for (let round = 1; round <= settings.compareRounds; round++) {
      const order = round % 2 === 1 ? (["this", "compare"] as const) : (["compare", "this"] as const);
      for (const build of order)
        await measureOn(compareRowName(build, round), build === "this" ? server : other, 100 + round);
    }
    await processes.stop(other);
    live.compare = compareMerges(rows, scriptTimes, fromRoot(settings.compareEntry));
  }
  if (wants("live-delivery")) {
    process.stdout.write("live-delivery…");
    live.delivery = await measureLiveDelivery({
      port: server.port,
      pid: server.child.pid ?? 0,
      admin: redis.admin,
      data,
      seconds: settings.durationSeconds,
      warmupSeconds: settings.warmupSeconds,
      mergesPerSecond: settings.liveMergesPerSecond,
    });
    process.stdout.write(
      ` p50 ${live.delivery.fromAnswerMs.p50} ms, p99 ${live.delivery.fromAnswerMs.p99} ms, ${live.delivery.events.missing} missing\n`,
    );
  }
  if (wants("live-memory")) {
    process.stdout.write(`live-memory (${IDLE_SUBSCRIBERS} idle subscribers)…`);
    const inspectorPort = await freePort();
    const inspected = await processes.startNode(
      "server with inspector",
      [...startArgs, `--inspect=127.0.0.1:${inspectorPort}`, settings.serverEntry],
      serverEnv,
      "/health/ready",
    );
    live.idleMemory = await measureIdleMemory({ port: inspected.port, inspectorPort, data });
    await processes.stop(inspected);
    const p = live.idleMemory.perSubscriber;
    process.stdout.write(` ${p.heapBytes + p.externalBytes} B heap + external, ${p.rssBytes} B RSS per subscriber\n`);
  }

  const baselineMeans = compareToBaseline(rows);
  const targets = [...targetsMet(rows, processes.hasTaskset ? 1 : nproc), ...liveTargets(live)];
  const result = benchResult({
    redisVersion: redisInfo.version,
    nproc,
    pinned: processes.hasTaskset,
    settings,
    data,
    large,
    largeBytes,
    startArgs,
    seedSeconds,
    largeSeedSeconds,
    baseline: baselineMeans,
    rows,
    targets,
    hotSession: hotResult,
    watchedDelivery,
    memory,
    live,
    serverWarnings: server.warnings,
    totalSeconds: Math.round((performance.now() - startedAt) / 1000),
  });
  printSummary(result, rows, server);
  writeResult(settings.output, result);
}

const durations = (settings: BenchSettings) => ({
  durationSeconds: settings.durationSeconds,
  warmupSeconds: settings.warmupSeconds,
});

const processes = new BenchProcesses(ROOT);
main(readSettings(), processes)
  .catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  })
  .finally(() => processes.stopAll());
