/**
 * What the bench reports: the machine, each scenario as a ratio of the bare baseline, the targets, the table it
 * prints and the JSON it writes.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import type { WatchedDelivery } from "./live";
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
  /** The number judged (null: not run; absent: a target that reports no single number). */
  measured?: number | null;
  /** It, with what it was made of, for reading. */
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
      ? "the servers (ours, the bare baseline, the peer) on core 0; Redis and the load generator (autocannon and merge-watched's subscribers, this process) on core 1"
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

/** The bare baseline a row is compared with: baseline-json-64k for the 64 KB scenarios, else baseline-json. */
const sizeOf = (name: string): "64k" | "1.6k" => (name.endsWith("-64k") ? "64k" : "1.6k");
const BASELINES = { "1.6k": ["baseline-json", "baseline-json-again"], "64k": ["baseline-json-64k"] } as const;

/** Rows of our server (not a bare baseline, not the peer): the rows the targets judge. */
const isOurs = (r: Measured) => !r.name.startsWith("baseline") && !r.name.startsWith("peer-");

export interface BaselineMeans {
  reqPerSec: number;
  serverCpuMicrosPerRequest: number;
}

/**
 * Sets each row's `ratio` (req/s over the mean of its size's bare baseline runs), `ratioToRaw` (over baseline-raw),
 * `cpuRatio` (the baseline's CPU per request over the row's) and, where the peer served the same request
 * (`peer-<name>`), `peerCpuRatio` (the peer's CPU per request over the row's); returns the baselines' means (NaN
 * when not run).
 */
export function compareToBaseline(rows: Measured[]): Record<"1.6k" | "64k", BaselineMeans> {
  const means = (names: readonly string[]): BaselineMeans => {
    const runs = rows.filter((r) => names.includes(r.name));
    const mean = (pick: (r: Measured) => number) =>
      runs.length ? runs.reduce((a, r) => a + pick(r), 0) / runs.length : Number.NaN;
    return { reqPerSec: mean((r) => r.reqPerSec), serverCpuMicrosPerRequest: mean((r) => r.serverCpuMicrosPerRequest) };
  };
  const baselines = { "1.6k": means(BASELINES["1.6k"]), "64k": means(BASELINES["64k"]) };
  const raw = rows.find((r) => r.name === "baseline-raw")?.reqPerSec ?? Number.NaN;
  for (const r of rows) {
    const base = baselines[sizeOf(r.name)];
    r.ratio = r.reqPerSec / base.reqPerSec;
    r.ratioToRaw = sizeOf(r.name) === "1.6k" ? r.reqPerSec / raw : Number.NaN;
    r.cpuRatio = base.serverCpuMicrosPerRequest / r.serverCpuMicrosPerRequest;
    const peer = rows.find((p) => p.name === `peer-${r.name}`);
    if (peer) r.peerCpuRatio = peer.serverCpuMicrosPerRequest / r.serverCpuMicrosPerRequest;
  }
  return baselines;
}

/**
 * The targets of issue 14 (ratios by server CPU per request where the issue says so), then those of earlier rounds
 * still kept (history's price, one round trip, zero errors); each met, missed or (`met: null`) not run, with the
 * measured value. `serverCores`: the cores the server may use.
 */
export function targetsMet(rows: Measured[], serverCores: number): Target[] {
  const byName = (name: string) => rows.find((r) => r.name === name);
  const readOne = byName("read-one");
  const readOne64k = byName("read-one-64k");
  const read20 = byName("read-20");
  const merge = byName("merge");
  const merge64k = byName("merge-64k");
  const target = (
    name: string,
    measured: number | undefined,
    met: (value: number) => boolean,
    value: string | undefined = "",
    digits = 2,
  ): Target => ({
    name,
    met: measured === undefined || !Number.isFinite(measured) ? null : met(measured),
    measured: measured === undefined || !Number.isFinite(measured) ? null : +measured.toFixed(3),
    value: measured === undefined ? "not run" : `${fmt(measured, digits)}${value ? ` (${value})` : ""}`,
  });
  const ours = rows.filter(isOurs);
  const worst = ours.reduce<Measured | undefined>((a, r) => (!a || r.p99OverP50 > a.p99OverP50 ? r : a), undefined);
  const cpu = (r: Measured | undefined) => r?.serverCpuMicrosPerRequest ?? Number.NaN;
  return [
    target(
      "read one, 1.6 KB: ≥ 0.65 of the bare baseline by server CPU per request",
      readOne?.cpuRatio,
      (v) => v >= 0.65,
      readOne &&
        `${fmt(cpu(readOne))} µs against ${fmt(cpu(readOne) * readOne.cpuRatio!)}; by req/s ${fmt(readOne.ratio!, 2)}`,
    ),
    target(
      "read one, 64 KB: ≥ 0.60 of the bare baseline by server CPU per request",
      readOne64k?.cpuRatio,
      (v) => v >= 0.6,
      readOne64k &&
        `${fmt(cpu(readOne64k))} µs against ${fmt(cpu(readOne64k) * readOne64k.cpuRatio!)}; by req/s ${fmt(readOne64k.ratio!, 2)}`,
    ),
    target(
      "read 20 (aliases), 1.6 KB: ≥ 30,000 sessions/s per server core",
      read20 && read20.sessionsPerSec / serverCores,
      (v) => v >= 30_000,
      read20 &&
        `${fmt((20 * 1e6) / cpu(read20))} sessions per second of server CPU, server at ${read20.cpu.serverPercent}%`,
      0,
    ),
    target(
      "merge into a 64 KB context: ≤ 1.5× the server CPU of merge into a 1.6 KB one",
      merge64k && merge && cpu(merge64k) / cpu(merge),
      (v) => v <= 1.5,
      merge64k &&
        merge &&
        `${fmt(cpu(merge64k))} µs against ${fmt(cpu(merge))}; Redis CPU ${fmt(merge64k.redisCpuMicrosPerRequest / merge.redisCpuMicrosPerRequest, 2)}×`,
    ),
    ...(["store", "merge"] as const).map((name) => {
      const w = byName(name);
      return target(
        `${name}, 1.6 KB: ≥ 0.8 of read one by req/s`,
        w && readOne && w.reqPerSec / readOne.reqPerSec,
        (v) => v >= 0.8,
        w && readOne && `by server CPU ${fmt(cpu(readOne) / cpu(w), 2)}`,
      );
    }),
    target(
      "p99 / p50 ≤ 3 in every scenario of the server",
      worst?.p99OverP50,
      (v) => v <= 3,
      worst &&
        `worst: ${worst.name}; above 3: ${
          ours
            .filter((r) => r.p99OverP50 > 3)
            .map((r) => `${r.name} ${fmt(r.p99OverP50, 2)}`)
            .join(", ") || "none"
        }`,
    ),
    watchedTarget(byName("merge-watched"), byName("merge-no-history")),
    target(
      "cheaper than the peer (Mercurius + graphql-jit) by CPU per read, 1.6 KB: ≥ 1.5×",
      readOne?.peerCpuRatio,
      (v) => v >= 1.5,
      readOne?.peerCpuRatio !== undefined
        ? `peer ${fmt(cpu(byName("peer-read-one")))} µs, ours ${fmt(cpu(readOne))}`
        : "",
    ),
    target(
      "cheaper than the peer by CPU per read, 64 KB: ≥ 2×",
      readOne64k?.peerCpuRatio,
      (v) => v >= 2,
      readOne64k?.peerCpuRatio !== undefined
        ? `peer ${fmt(cpu(byName("peer-read-one-64k")))} µs, ours ${fmt(cpu(readOne64k))}`
        : "",
    ),
    historyTarget(merge, byName("merge-no-history")),
    roundTripTarget(ours),
    {
      name: "zero errors",
      met: rows.every((r) => r.errors === 0),
      measured: rows.reduce((a, r) => a + r.errors, 0),
      value: `${rows.reduce((a, r) => a + r.errors, 0)} in all`,
    },
  ];
}

/** A merge that also delivers to one live subscriber, against one with neither history nor subscriber. */
function watchedTarget(watched: Measured | undefined, without: Measured | undefined): Target {
  const name =
    "merge with history (depth 20) and a live subscriber: ≤ 1.25× the server CPU of merge-no-history (no history, no subscriber)";
  if (!watched || !without) return { name, met: null, measured: null, value: "not run" };
  const ratio = watched.serverCpuMicrosPerRequest / without.serverCpuMicrosPerRequest;
  return {
    name,
    met: ratio <= 1.25,
    measured: +ratio.toFixed(3),
    value: `${fmt(ratio, 2)} (${fmt(watched.serverCpuMicrosPerRequest)} µs against ${fmt(without.serverCpuMicrosPerRequest)}; Redis CPU ${fmt(watched.redisCpuMicrosPerRequest / without.redisCpuMicrosPerRequest, 2)}×)`,
  };
}

/** One Redis round trip per request of our server (a userSessions page: the index, then one MGET). */
function roundTripTarget(ours: Measured[]): Target {
  // Exact: MONITOR over sequential requests. The rate over the whole window may read a little above the count,
  // because requests in flight when the window closes send their command but are not counted as done.
  const expected = (r: Measured) => (r.name === "user-sessions" ? 2 : 1);
  const met = ours.every(
    (r) => r.redisRoundTripsChecked <= expected(r) && r.redisRoundTripsPerRequest <= expected(r) + 0.02,
  );
  return {
    name: "one Redis round trip per request (reads and writes; a userSessions page: the index, then one MGET)",
    met: ours.length ? met : null,
    measured: ours.length ? Math.max(...ours.map((r) => r.redisRoundTripsChecked - expected(r) + 1)) : null,
    value: ours
      .map((r) => `${r.name} ${fmt(r.redisRoundTripsChecked, 2)} (window ${fmt(r.redisRoundTripsPerRequest, 2)})`)
      .join(", "),
  };
}

/** History's price: a merge into a session that keeps history against the same merge into one that does not. */
function historyTarget(withHistory: Measured | undefined, without: Measured | undefined): Target {
  const name = "merge with history (depth 20) ≤ 1.25× the server CPU of one without (issue 13)";
  if (!withHistory || !without) return { name, met: null, measured: null, value: "not run" };
  const ratio = withHistory.serverCpuMicrosPerRequest / without.serverCpuMicrosPerRequest;
  const redis = withHistory.redisCpuMicrosPerRequest / without.redisCpuMicrosPerRequest;
  return {
    name,
    met: ratio <= 1.25,
    measured: +ratio.toFixed(3),
    value: `${fmt(ratio, 2)} (Redis CPU per call: ${fmt(redis, 2)})`,
  };
}

/** The result JSON: the measured rows rounded for reading, with what was run on what. */
export function benchResult(run: {
  redisVersion: string;
  nproc: number;
  pinned: boolean;
  settings: BenchSettings;
  data: DataSet;
  /** The ~64 KB data set and its documents' mean size, seeded and after merge-64k (NaN: not run). */
  large: DataSet;
  largeBytes: { seeded: number; afterMerges: number };
  /** The node flags of `npm start`. */
  startArgs: readonly string[];
  seedSeconds: number;
  largeSeedSeconds: number;
  baseline: ReturnType<typeof compareToBaseline>;
  rows: Measured[];
  targets: Target[];
  hotSession: HotSession | undefined;
  watchedDelivery: WatchedDelivery | undefined;
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
      largeSessions: run.large.total,
      largeTenants: run.large.tenants,
      largeDocumentBytes: run.largeBytes.seeded,
      largeDocumentBytesAfterMerges: Number.isFinite(run.largeBytes.afterMerges) ? run.largeBytes.afterMerges : null,
      largeSeedSeconds: +run.largeSeedSeconds.toFixed(1),
      baselineReqPerSec: Math.round(run.baseline["1.6k"].reqPerSec),
      baselineServerCpuMicrosPerRequest: Math.round(run.baseline["1.6k"].serverCpuMicrosPerRequest),
      baseline64kReqPerSec: Math.round(run.baseline["64k"].reqPerSec),
      baseline64kServerCpuMicrosPerRequest: Math.round(run.baseline["64k"].serverCpuMicrosPerRequest),
    },
    scenarios: run.rows.map((r) => ({
      ...r,
      reqPerSec: Math.round(r.reqPerSec),
      sessionsPerSec: Math.round(r.sessionsPerSec),
      p50Ms: +r.p50Ms.toFixed(2),
      p99Ms: +r.p99Ms.toFixed(2),
      p99OverP50: +r.p99OverP50.toFixed(2),
      redisRoundTripsPerRequest: +r.redisRoundTripsPerRequest.toFixed(3),
      redisCommandsPerRequest: +r.redisCommandsPerRequest.toFixed(3),
      redisRoundTripsChecked: +r.redisRoundTripsChecked.toFixed(2),
      ratio: +(r.ratio ?? Number.NaN).toFixed(3),
      ratioToRaw: +(r.ratioToRaw ?? Number.NaN).toFixed(3),
      serverCpuMicrosPerRequest: Math.round(r.serverCpuMicrosPerRequest),
      redisCpuMicrosPerRequest: Math.round(r.redisCpuMicrosPerRequest),
      serverPageFaultsPerRequest:
        r.serverPageFaultsPerRequest === undefined ? undefined : +r.serverPageFaultsPerRequest.toFixed(2),
      cpuRatio: +(r.cpuRatio ?? Number.NaN).toFixed(3),
      peerCpuRatio: r.peerCpuRatio === undefined ? undefined : +r.peerCpuRatio.toFixed(3),
    })),
    targets: run.targets,
    hotSession: run.hotSession,
    watchedDelivery: run.watchedDelivery,
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
    "p99/p50",
    "errors",
    "Redis RT/req",
    "cmds/req",
    "vs baseline",
    "server CPU",
    "CPU µs/req",
    "vs baseline by CPU",
    "vs peer by CPU",
    "Redis µs/req",
    "faults/req",
  ];
  const lines = rows.map((r) => [
    r.name,
    fmt(r.reqPerSec),
    fmt(r.sessionsPerSec),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    fmt(r.p99OverP50, 2),
    String(r.errors),
    fmt(r.redisRoundTripsPerRequest, 2),
    fmt(r.redisCommandsPerRequest, 2),
    r.ratio === undefined ? "" : fmt(r.ratio, 2),
    `${r.cpu.serverPercent}%`,
    fmt(r.serverCpuMicrosPerRequest),
    r.cpuRatio === undefined ? "" : fmt(r.cpuRatio, 2),
    r.peerCpuRatio === undefined ? "" : fmt(r.peerCpuRatio, 2),
    fmt(r.redisCpuMicrosPerRequest),
    r.serverPageFaultsPerRequest === undefined ? "" : fmt(r.serverPageFaultsPerRequest, 1),
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
    `${setup.sessions.toLocaleString("en-US")} sessions of ~1.7 KB and ${setup.largeSessions.toLocaleString("en-US")} of ${setup.largeDocumentBytes.toLocaleString("en-US")} B (the *-64k scenarios), ` +
      `${setup.connections} connections, ${setup.durationSeconds} s per scenario after ${setup.warmupSeconds} s warm-up\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  process.stdout.write(
    "ratios by server CPU per request: to the bare baseline of the same size (64k rows to baseline-json-64k), and the peer's over ours (above 1: we are cheaper)\n\ntargets (issue 14, then earlier ones still kept):\n",
  );
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
  for (const name of ["merge-64-on-one", "merge-watched", "merge-64k"]) {
    const note = rows.find((r) => r.name === name)?.note;
    if (note) process.stdout.write(`${name}: ${note}\n`);
  }
  if (server.warnings > 0)
    process.stdout.write(`server printed ${server.warnings} warning lines, e.g. ${server.output.at(-1)}\n`);
}

/** Writes `result` to `path` (creating its folder) and says where. */
export function writeResult(path: string, result: BenchResult): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nwrote ${fromRoot(path)}\n`);
}
