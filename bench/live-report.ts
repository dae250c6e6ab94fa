/**
 * What the bench reports about live updates: the delivery and idle-memory targets, the merge's cost against another
 * build (BENCH_COMPARE_ENTRY) when nobody listens, and the lines it prints.
 */
import type { LiveDelivery, IdleMemory } from "./live";
import { LIVE_MERGES_PER_SECOND, SUBSCRIBERS_PER_SESSION } from "./live";
import { MAX_IN_FLIGHT } from "./live-client";
import type { Measured } from "./measure";

/** What the live steps measured; each is undefined when it was not run. */
export interface LiveResults {
  delivery?: LiveDelivery;
  idleMemory?: IdleMemory;
  compare?: CompareResult;
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "–";
const kb = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;

/** The rows of the merge scenario run on this build and on the compared one, round by round (run.ts names them). */
const ROW_PREFIX = { this: "merge (this build, ", compare: "merge (compare, " } as const;
export const compareRowName = (build: "this" | "compare", round: number): string => `${ROW_PREFIX[build]}${round})`;

export type CompareResult = ReturnType<typeof compareMerges>;

/**
 * By row name: Redis's own time per call (INFO commandstats) of the write script (EVALSHA) and of the SPUBLISH inside
 * it, in µs — NaN where none ran. Unlike Redis CPU per request, this leaves out Redis's network work.
 */
export type ScriptTimes = Record<string, { script: number; spublish: number }>;

/** Beyond this spread among one build's own rounds, the comparison says nothing (the target reads "–"). */
const TOO_NOISY = 0.25;

/**
 * This build's merge against the compared build's: the ratios of the means of server CPU and Redis CPU per merge,
 * and the noise they are judged against — the larger spread (max / min − 1) among one build's own rounds.
 */
export function compareMerges(rows: Measured[], times: ScriptTimes, entry: string) {
  const of = (build: "this" | "compare") => rows.filter((r) => r.name.startsWith(ROW_PREFIX[build]));
  const mine = of("this");
  const theirs = of("compare");
  const mean = (list: Measured[], pick: (r: Measured) => number) => list.reduce((a, r) => a + pick(r), 0) / list.length;
  const spread = (list: Measured[], pick: (r: Measured) => number) =>
    Math.max(...list.map(pick)) / Math.min(...list.map(pick)) - 1;
  const server = (r: Measured) => r.serverCpuMicrosPerRequest;
  const redis = (r: Measured) => r.redisCpuMicrosPerRequest;
  return {
    entry,
    rounds: mine.length,
    serverCpuMicros: { this: mine.map(server).map(Math.round), compare: theirs.map(server).map(Math.round) },
    redisCpuMicros: { this: mine.map(redis).map(Math.round), compare: theirs.map(redis).map(Math.round) },
    scriptMicros: {
      this: mine.map((r) => +times[r.name]?.script.toFixed(1)),
      compare: theirs.map((r) => +times[r.name]?.script.toFixed(1)),
    },
    spublishMicros: mine.map((r) => +times[r.name]?.spublish.toFixed(2)),
    serverRatio: +(mean(mine, server) / mean(theirs, server)).toFixed(3),
    redisRatio: +(mean(mine, redis) / mean(theirs, redis)).toFixed(3),
    serverNoise: +Math.max(spread(mine, server), spread(theirs, server)).toFixed(3),
    redisNoise: +Math.max(spread(mine, redis), spread(theirs, redis)).toFixed(3),
  };
}

/** The live-update targets, each met, missed or (`met: null`) not run. */
export function liveTargets({ delivery, idleMemory, compare }: LiveResults) {
  const target = (name: string, met: boolean | undefined, value: string) => ({ name, met: met ?? null, value });
  const asked = LIVE_MERGES_PER_SECOND;
  const atTargetRate = delivery?.askedMergesPerSecond === asked;
  return [
    target(
      `live: delivery p99 ≤ 50 ms from the write's answer (${fmt(asked)} merges/s × ${SUBSCRIBERS_PER_SESSION} subscribers each)`,
      delivery && atTargetRate
        ? delivery.fromAnswerMs.p99 <= 50 && delivery.mergesPerSecond >= 0.95 * asked
        : undefined,
      delivery
        ? `p99 ${fmt(delivery.fromAnswerMs.p99, 1)} ms, p50 ${fmt(delivery.fromAnswerMs.p50, 1)} ms at ${fmt(delivery.mergesPerSecond)} merges/s answered of ${fmt(delivery.askedMergesPerSecond)} asked (server CPU ${delivery.cpu.serverPercent}%)`
        : "not run",
    ),
    target(
      "live: every event delivered, once",
      delivery &&
        delivery.events.missing === 0 &&
        delivery.events.repeats === 0 &&
        delivery.events.closedEarly === 0 &&
        delivery.events.unexpected.length === 0 &&
        delivery.mergeFailures === 0,
      delivery
        ? `${fmt(delivery.events.received)} of ${fmt(delivery.events.expected)}, ${delivery.events.repeats} repeats, ${delivery.mergeFailures} failed merges, ${delivery.events.closedEarly} sockets closed`
        : "not run",
    ),
    target(
      "live: memory per idle subscriber ≤ 20 KB (heap + external after a full GC)",
      idleMemory && idleMemory.perSubscriber.heapBytes + idleMemory.perSubscriber.externalBytes <= 20 * 1024,
      idleMemory
        ? `${kb(idleMemory.perSubscriber.heapBytes + idleMemory.perSubscriber.externalBytes)} (RSS ${kb(idleMemory.perSubscriber.rssBytes)}) over ${fmt(idleMemory.subscribers)} subscribers`
        : "not run",
    ),
    compareTarget(compare),
  ];
}

/**
 * Within noise: the ratio of the means is at most 1 + the spread of one build's own rounds, for server and Redis
 * CPU alike. With rounds spread wider than TOO_NOISY, not judged.
 */
function compareTarget(compare: CompareResult | undefined) {
  const name = "live: a merge nobody listens to costs what it did before live updates (within noise)";
  if (!compare) return { name, met: null, value: "not run (BENCH_COMPARE_ENTRY)" };
  const value =
    `server CPU ×${fmt(compare.serverRatio, 2)} (rounds spread ${fmt(compare.serverNoise * 100)}%), ` +
    `Redis CPU ×${fmt(compare.redisRatio, 2)} (spread ${fmt(compare.redisNoise * 100)}%) over ${compare.rounds} rounds`;
  if (Math.max(compare.serverNoise, compare.redisNoise) > TOO_NOISY)
    return { name, met: null, value: `too noisy to judge: ${value}` };
  const met = compare.serverRatio <= 1 + compare.serverNoise && compare.redisRatio <= 1 + compare.redisNoise;
  return { name, met, value };
}

/** The live-update lines of the summary. */
export function liveLines({ delivery: d, idleMemory: m, compare: c }: LiveResults): string {
  const lines: string[] = [];
  if (d) {
    lines.push(
      `live delivery: ${fmt(d.subscribers)} subscribers (${d.sessions} sessions × ${SUBSCRIBERS_PER_SESSION}), ${fmt(d.merges)} merges at ${fmt(d.mergesPerSecond)}/s of ${fmt(d.askedMergesPerSecond)} asked${d.skippedMerges ? ` (${fmt(d.skippedMerges)} not sent: ${MAX_IN_FLIGHT} waiting for answers already)` : ""}; ` +
        `from the answer p50 ${fmt(d.fromAnswerMs.p50, 2)} ms, p99 ${fmt(d.fromAnswerMs.p99, 2)} ms, max ${fmt(d.fromAnswerMs.max, 1)} ms ` +
        `(${fmt(d.beforeAnswer * 100)}% arrived before the answer); from sending p50 ${fmt(d.fromSendMs.p50, 2)} ms, p99 ${fmt(d.fromSendMs.p99, 2)} ms; ` +
        `merge answered p50 ${fmt(d.mergeAnswerMs.p50, 2)} ms, p99 ${fmt(d.mergeAnswerMs.p99, 2)} ms`,
      `  CPU: server ${d.cpu.serverPercent}% (${fmt(d.serverCpuMicrosPerMerge)} µs per merge with its fan-out: one core serves at most ~${fmt(1e6 / d.serverCpuMicrosPerMerge)} merges/s like these), Redis ${d.cpu.redisPercent}%, ` +
        `load generator ${d.cpu.loadGeneratorPercent}%, core 0 others ${d.cpu.core0OthersPercent}%`,
    );
    if (d.mergeFailureExample) lines.push(`  a failed merge: ${d.mergeFailureExample}`);
    for (const frame of d.events.unexpected) lines.push(`  an unexpected frame: ${frame}`);
  }
  if (m) {
    const { perSubscriber: p, leftAfterClose: l } = m;
    lines.push(
      `idle subscribers: ${fmt(m.subscribers)}, one per connection, each its own user channel: per subscriber heap ${kb(p.heapBytes)} + external ${kb(p.externalBytes)} after a full GC, RSS ${kb(p.rssBytes)}; ` +
        `left after closing them all: heap ${kb(l.heapBytes)}, RSS ${kb(l.rssBytes)}`,
    );
  }
  if (c) {
    lines.push(
      `merge against ${c.entry}: server CPU µs/merge this ${c.serverCpuMicros.this.join(", ")} | compare ${c.serverCpuMicros.compare.join(", ")}; ` +
        `Redis µs/merge this ${c.redisCpuMicros.this.join(", ")} | compare ${c.redisCpuMicros.compare.join(", ")}; ` +
        `the write script in Redis (commandstats) µs/call this ${c.scriptMicros.this.join(", ")} | compare ${c.scriptMicros.compare.join(", ")}, ` +
        `of which SPUBLISH ${c.spublishMicros.join(", ")}`,
    );
  }
  return lines.length ? `\n${lines.join("\n")}\n` : "";
}
