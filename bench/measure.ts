/**
 * Measuring one scenario: a sequential check of its answers with Redis MONITOR on (exact round trips per request),
 * a warm-up, then a measured autocannon run. Latency percentiles from every response; CPU of the target from
 * /proc/<pid>/stat, of core 0 from /proc/stat, of Redis from INFO cpu; Redis commands from INFO commandstats.
 */
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import { type Redis } from "ioredis";
import type { RedisProcess } from "../test/helpers/redis-server";
import type { BenchRequest, Scenario } from "./scenarios";
import { prng } from "./workload";

/** Connections of the load generator. */
export const CONNECTIONS = 64;
/** Requests of the sequential check, each answer verified. */
const CHECKED_REQUESTS = 20;
const MAX_LATENCY_SAMPLES = 5_000_000;

export interface Measured {
  name: string;
  description: string;
  requests: number;
  reqPerSec: number;
  sessionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p99OverP50: number;
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
  /** Redis CPU time per request (µs), from INFO cpu: what one request costs Redis, which runs one script at a time. */
  redisCpuMicrosPerRequest: number;
  /** The server's minor page faults per request (procMinorFaults): fresh memory the kernel had to map. */
  serverPageFaultsPerRequest?: number;
  cpuRatio?: number;
  /** The peer's CPU per request over this one's (read-one and read-one-64k): above 1, we are the cheaper. */
  peerCpuRatio?: number;
  ratio?: number;
  ratioToRaw?: number;
  note?: string;
}

/** Commands the Lua scripts under `root`/src call: under load these are counted as inside a script when scripts ran. */
export function scriptCommands(root: string): Set<string> {
  const dir = join(root, "src", "store", "redis", "scripts");
  const names = new Set<string>();
  for (const file of readdirSync(dir)) {
    const text = readFileSync(join(dir, file), "utf8");
    for (const match of text.matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"](?:\s*,\s*['"]([A-Za-z]+)['"])?/g)) {
      names.add(match[1].toLowerCase());
      // INFO commandstats names a container's subcommand `pubsub|shardnumsub`.
      if (match[2]) names.add(`${match[1]}|${match[2]}`.toLowerCase());
    }
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

function roundTrips(delta: Record<string, number>, inScripts: ReadonlySet<string>): number {
  const scripted = (delta.evalsha ?? 0) + (delta.eval ?? 0) + (delta.fcall ?? 0);
  let total = 0;
  for (const [name, calls] of Object.entries(delta)) if (scripted === 0 || !inScripts.has(name)) total += calls;
  return total;
}

/** CPU seconds (user + system) `pid` has used so far; NaN when it cannot be read. */
export function procCpuSeconds(pid: number): number {
  const fields = procStatFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / 100 : Number.NaN; // utime + stime, in USER_HZ ticks
}

/**
 * Minor page faults `pid` has taken so far (the kernel handing it fresh memory); NaN when it cannot be read. On the
 * bench's VM each costs microseconds of the server's CPU, so a scenario that allocates fresh buffers per request
 * shows here first.
 */
export function procMinorFaults(pid: number): number {
  const fields = procStatFields(pid);
  return fields ? Number(fields[7]) : Number.NaN; // minflt
}

/** The fields of /proc/<pid>/stat after the command name, from the state on (field 3 of proc(5) at index 0). */
function procStatFields(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  } catch {
    return undefined;
  }
}

/** Busy seconds of one core (everything but idle and iowait), from /proc/stat. */
export function coreBusySeconds(core: number): number {
  const line = readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) return Number.NaN;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** CPU seconds Redis has used so far, from INFO cpu. */
export async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info("cpu");
  const value = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
  return value("used_cpu_user") + value("used_cpu_sys");
}

/** Calls and microseconds of every command so far, from INFO commandstats (script-internal calls have their own). */
export async function commandTimes(admin: Redis): Promise<Record<string, { calls: number; usec: number }>> {
  const times: Record<string, { calls: number; usec: number }> = {};
  for (const match of (await admin.info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    times[match[1]] = { calls: Number(match[2]), usec: Number(match[3]) };
  return times;
}

/** The p-th percentile of sorted samples (NaN when there are none). */
export function percentile(sorted: Float64Array, p: number): number {
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

const send = async (port: number, request: BenchRequest): Promise<{ status: number; body: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}${request.path}`, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text() };
};

/**
 * Redis MONITOR on a plain socket: calls `onCommand` with each command's source (`lua` for a script's calls, else the
 * client's address) and its quoted arguments. Not ioredis's monitor(): its connection failed now and then with
 * "Command queue state error" on a MONITOR line, which ended the whole bench.
 */
async function monitorCommands(
  redisUrl: string,
  onCommand: (source: string, args: string) => void,
): Promise<() => void> {
  const url = new URL(redisUrl);
  const socket = connect(Number(url.port), url.hostname);
  socket.setEncoding("utf8");
  let pending = "";
  let monitoring = false;
  const started = new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.on("data", (chunk: string) => {
      pending += chunk;
      for (let end = pending.indexOf("\r\n"); end >= 0; end = pending.indexOf("\r\n")) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (!monitoring) {
          monitoring = line === "+OK";
          if (monitoring) resolve();
          else reject(new Error(`MONITOR answered ${line}`));
          continue;
        }
        // +1796219230.559661 [0 127.0.0.1:46060] "info" "commandstats"   (or [0 lua] for a script's call)
        const command = /^\+[\d.]+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
        if (command) onCommand(command[1], command[2]);
      }
    });
  });
  socket.write("MONITOR\r\n");
  await started;
  socket.on("error", () => {}); // destroyed by the caller; nothing to report after that
  return () => socket.destroy();
}

/**
 * Sends a connection's first requests one at a time with MONITOR on: checks each answer and counts the commands
 * that reached Redis from a client (not from inside a script) per request. With `serverPort` (a scenario that must
 * answer as the server does), each answer must also equal the server's answer to the same request, byte for byte
 * but for the line break Apollo Server ends its JSON with (Fastify sends none).
 */
async function check(
  port: number,
  scenario: Scenario,
  redisUrl: string,
  serverPort: number | undefined,
): Promise<{ failures: string[]; roundTrips: number }> {
  const requests = scenario.requests(prng(999), 0).slice(0, CHECKED_REQUESTS);
  let topLevel = 0;
  const stopMonitor = await monitorCommands(redisUrl, (source, args) => {
    // The cleanup scheduler's own ticks (its `scs:cleanup:*` keys) are not the requests' round trips.
    if (source !== "lua" && !args.includes('"scs:cleanup')) topLevel++;
  });
  await sleep(50);
  topLevel = 0;
  const failures: string[] = [];
  const answers: string[] = [];
  try {
    for (const request of requests) {
      const { status, body } = await send(port, request);
      answers.push(body);
      if (status !== 200 || !scenario.verify(body)) failures.push(`${status} ${body.slice(0, 300)}`);
    }
    await sleep(100); // MONITOR lines arrive asynchronously
  } finally {
    stopMonitor();
  }
  // After MONITOR, so the server's reads are not counted; these scenarios only read, so the order does not matter.
  if (serverPort !== undefined) {
    for (const [i, request] of requests.entries()) {
      const theirs = withoutFinalNewline(answers[i]);
      const ours = withoutFinalNewline((await send(serverPort, request)).body);
      if (theirs === ours) continue;
      const at = firstDifference(theirs, ours);
      const around = (text: string) => JSON.stringify(text.slice(Math.max(0, at - 80), at + 80));
      failures.push(`differs from the server's answer at character ${at}: ${around(theirs)} / ${around(ours)}`);
    }
  }
  return { failures, roundTrips: topLevel / requests.length };
}

const withoutFinalNewline = (text: string) => (text.endsWith("\n") ? text.slice(0, -1) : text);

/** Index of the first character where `a` and `b` differ. */
function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

export interface MeasureOptions {
  /** The target's port and pid: the server's or the baseline's, as the scenario says. */
  port: number;
  pid: number;
  redis: RedisProcess;
  /** From scriptCommands(). */
  inScripts: ReadonlySet<string>;
  /** The scenario's place in the run: seeds the warm-up's and the run's random requests. */
  index: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** The server's port, for scenarios whose answers must equal the server's (`sameAnswerAsServer`). */
  serverPort?: number;
}

/**
 * Checks, warms up and measures one scenario. `acknowledged`: the correct answers of all three phases (the merges
 * the hot session's version must have counted).
 */
export async function measure(
  scenario: Scenario,
  { port, pid, redis, inScripts, index, durationSeconds, warmupSeconds, serverPort }: MeasureOptions,
): Promise<Measured & { acknowledged: number }> {
  const checked = await check(port, scenario, redis.url, scenario.sameAnswerAsServer ? serverPort : undefined);
  if (checked.failures.length > 0)
    process.stderr.write(
      `  ${scenario.name}: ${checked.failures.length} wrong answers in the check, e.g. ${checked.failures[0]}\n`,
    );
  const warm = warmupSeconds > 0 ? await runLoad(port, scenario, warmupSeconds, 1000 + index) : undefined;

  const before = await redis.commandCalls();
  const faultsBefore = procMinorFaults(pid);
  const cpuBefore = {
    server: procCpuSeconds(pid),
    redis: await redisCpuSeconds(redis.admin),
    self: process.cpuUsage(),
    core0: coreBusySeconds(0),
  };
  const run = await runLoad(port, scenario, durationSeconds, 2000 + index);
  const cpuAfter = {
    server: procCpuSeconds(pid),
    redis: await redisCpuSeconds(redis.admin),
    self: process.cpuUsage(cpuBefore.self),
    core0: coreBusySeconds(0),
  };
  const faultsAfter = procMinorFaults(pid);
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
    p99OverP50: percentile(run.latencies, 99) / percentile(run.latencies, 50),
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
    redisCpuMicrosPerRequest: ((cpuAfter.redis - cpuBefore.redis) * 1e6) / run.total,
    serverPageFaultsPerRequest: (faultsAfter - faultsBefore) / run.total,
    acknowledged,
  };
}
