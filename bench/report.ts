/**
 * What the bench reports: the machine, each scenario as a ratio of the bare baseline, the targets, the table it
 * prints and the JSON it writes.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import { liveLines, type LiveResults } from "./live-report";
import { CONNECTIONS, type Measured } from "./measure";
import type { MemoryReport } from "./memory";
import type { NodeServer } from "./processes";
import type { DataSet } from "./seed";
import { fromRoot, type BenchSettings } from "./settings";

/** The hot session of merge-64-on-one: its version must rise by every acknowledged merge. */
export interface HotSession {
  versionBefore: number;
  versionAfter: number;
  acknowledged: number;
  documentBytes: number;
}

export interface Target {
  name: string;
  /** null: not run. */
  met: boolean | null;
  value: string;
}
export type BenchResult = ReturnType<typeof benchResult>;

/** The cores this process may use (nproc): call it before pinning the bench to one core. */
export function countCores(): number {
  return Number(spawnSync("nproc", [], { encoding: "utf8" }).stdout?.trim()) || cpus().length;
}

function machine(redisVersion: string, nproc: number, pinned: boolean) {
  const cpuInfo = readFileSync("/proc/cpuinfo", "utf8");
  return {
    nproc,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuInfo)?.[1] ?? cpus()[0]?.model ?? "unknown",
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    redis: redisVersion,
    date: new Date().toISOString(),
    pinned: pinned
      ? "server and baseline on core 0; Redis and the load generator (autocannon, this process) on core 1"
      : "not pinned (taskset not found)",
  };
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "–";

/** The line printed after a scenario's name once it is measured. */
export const progressLine = (row: Measured): string =>
  ` ${fmt(row.reqPerSec)} req/s, p50 ${fmt(row.p50Ms, 2)} ms, p99 ${fmt(row.p99Ms, 2)} ms, ${row.errors} errors\n`;

/**
 * Sets each row's `ratio` (req/s over the mean of the baseline-json runs), `ratioToRaw` (over baseline-raw) and
 * `cpuRatio` (the baseline's CPU per request over the row's); returns the baseline's means (NaN when not run).
 */
export function compareToBaseline(rows: Measured[]): { reqPerSec: number; serverCpuMicrosPerRequest: number } {
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
  return { reqPerSec: base, serverCpuMicrosPerRequest: baseCpu };
}

/** The targets, each met, missed or (`met: null`) not run; `serverCores`: the cores the server may use. */
export function targetsMet(rows: Measured[], serverCores: number) {
  const byName = (name: string) => rows.find((r) => r.name === name);
  const readOne = byName("read-one");
  const read20 = byName("read-20");
  const target = (name: string, met: boolean | undefined, value: string) => ({ name, met: met ?? null, value });
  const writes = ["store", "merge"].map(byName);
  return [
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
    historyTarget(byName("merge"), byName("merge-no-history")),
    target(
      "one Redis round trip per request (reads and writes; a userSessions page: the index, then one MGET)",
      rows
        .filter((r) => !r.name.startsWith("baseline"))
        // Exact: MONITOR over sequential requests. The rate over the whole window may read a little above the
        // count, because requests in flight when the window closes send their command but are not counted as done.
        .every((r) => {
          const expected = r.name === "user-sessions" ? 2 : 1;
          return r.redisRoundTripsChecked <= expected && r.redisRoundTripsPerRequest <= expected + 0.02;
        }),
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
}

/** History's price: a merge into a session that keeps history against the same merge into one that does not. */
function historyTarget(withHistory: Measured | undefined, without: Measured | undefined) {
  const name = "merge with history (depth 20) ≤ 1.25× the server CPU of one without";
  if (!withHistory || !without) return { name, met: null, value: "not run" };
  const ratio = withHistory.serverCpuMicrosPerRequest / without.serverCpuMicrosPerRequest;
  const redis = withHistory.redisCpuMicrosPerRequest / without.redisCpuMicrosPerRequest;
  return { name, met: ratio <= 1.25, value: `${fmt(ratio, 2)} (Redis CPU per call: ${fmt(redis, 2)})` };
}

/** The result JSON: the measured rows rounded for reading, with what was run on what. */
export function benchResult(run: {
  redisVersion: string;
  nproc: number;
  pinned: boolean;
  settings: BenchSettings;
  data: DataSet;
  /** The node flags of `npm start`. */
  startArgs: readonly string[];
  seedSeconds: number;
  baseline: ReturnType<typeof compareToBaseline>;
  rows: Measured[];
  targets: Target[];
  hotSession: HotSession | undefined;
  memory: MemoryReport;
  live: LiveResults;
  serverWarnings: number;
  totalSeconds: number;
}) {
  return {
    machine: machine(run.redisVersion, run.nproc, run.pinned),
    setup: {
      sessions: run.data.total,
      tenants: run.data.tenants,
      usersPerTenant: run.data.usersPerTenant,
      sessionsPerUser: run.data.sessionsPerUser,
      connections: CONNECTIONS,
      durationSeconds: run.settings.durationSeconds,
      warmupSeconds: run.settings.warmupSeconds,
      serverEntry: fromRoot(run.settings.serverEntry),
      serverNodeArgs: [...run.startArgs, ...run.settings.serverNodeArgs],
      seedSeconds: +run.seedSeconds.toFixed(1),
      baselineReqPerSec: Math.round(run.baseline.reqPerSec),
      baselineServerCpuMicrosPerRequest: Math.round(run.baseline.serverCpuMicrosPerRequest),
    },
    scenarios: run.rows.map((r) => ({
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
      redisCpuMicrosPerRequest: Math.round(r.redisCpuMicrosPerRequest),
      cpuRatio: +(r.cpuRatio ?? Number.NaN).toFixed(3),
    })),
    targets: run.targets,
    hotSession: run.hotSession,
    memory: run.memory,
    live: run.live,
    serverWarnings: run.serverWarnings,
    totalSeconds: run.totalSeconds,
  };
}

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
    "Redis µs/req",
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
    fmt(r.redisCpuMicrosPerRequest),
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

/** Prints the machine, the table of `rows` (unrounded), the targets, memory, the hot session and server warnings. */
export function printSummary(result: BenchResult, rows: Measured[], server: NodeServer): void {
  const { machine: m, setup, targets, memory } = result;
  process.stdout.write(`\n${m.cpuModel}, ${m.nproc} cores, node ${m.node}, Redis ${m.redis}; ${m.pinned}\n`);
  process.stdout.write(
    `${setup.sessions.toLocaleString("en-US")} sessions, ${setup.connections} connections, ${setup.durationSeconds} s per scenario after ${setup.warmupSeconds} s warm-up\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  for (const t of targets)
    process.stdout.write(`${t.met === null ? "–" : t.met ? "met   " : "MISSED"}  ${t.name}: ${t.value}\n`);
  process.stdout.write(
    `\nmemory per session: ${memory.memoryUsagePerSessionKey} B (MEMORY USAGE) for ${memory.jsonBytesPerSession} B of JSON (×${memory.keyOverheadRatio}), ` +
      `plus ${memory.indexBytesPerSessionTotal} B of index entries = ${memory.totalPerSession} B; used_memory grew ${memory.usedMemoryDeltaPerSession} B per session\n` +
      (memory.history
        ? `history: ${memory.history.bytesPerKeptVersion} B of Redis memory per kept version for ${memory.history.changeBytes} B of change (the merge workload, ${memory.history.merges} merges)\n`
        : ""),
  );
  process.stdout.write(liveLines(result.live));
  if (result.hotSession)
    process.stdout.write(`merge-64-on-one: ${rows.find((r) => r.name === "merge-64-on-one")?.note}\n`);
  if (server.warnings > 0)
    process.stdout.write(`server printed ${server.warnings} warning lines, e.g. ${server.output.at(-1)}\n`);
}

/** Writes `result` to `path` (creating its folder) and says where. */
export function writeResult(path: string, result: BenchResult): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nwrote ${fromRoot(path)}\n`);
}
