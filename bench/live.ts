/**
 * Live updates in the bench: how fast a merge reaches 1,000 subscribers of one server process, and what an idle
 * subscriber costs that process in memory. The clients are in live-client.ts; the cost of a merge nobody listens
 * to is the merge scenario itself, compared with a build from before live updates (run.ts, BENCH_COMPARE_ENTRY).
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { InspectorClient, type ProcessMemory } from "./inspector";
import { openSubscribers, sendMerges, UserWatcher, type SentMerge, type Subscriber } from "./live-client";
import { coreBusySeconds, percentile, procCpuSeconds, redisCpuSeconds } from "./measure";
import { GATEWAY_SECRET } from "./scenarios";
import { MERGE } from "./workload";
import type { DataSet, SeededSession } from "./seed";

/** The delivery scenario's shape (issue 13): 100 sessions × 10 subscribers, 1,000 merges/s in all. */
export const LIVE_SESSIONS = 100;
export const SUBSCRIBERS_PER_SESSION = 10;
export const LIVE_MERGES_PER_SECOND = 1000;
/** Idle subscribers opened for the memory measurement, each on its own connection. */
export const IDLE_SUBSCRIBERS = 2000;
/** How long events may trail the last merge's answer before a missing one counts as lost. */
const GRACE_MS = 5000;

/**
 * The followed sessions: one per tenant (its first user's second session, not merge-64-on-one's hot session), so
 * every subscription listens on a user channel of its own and filters nothing out.
 */
export const liveSessions = (data: DataSet): SeededSession[] =>
  Array.from({ length: LIVE_SESSIONS }, (_, i) => data.session(Math.floor((i * data.total) / LIVE_SESSIONS) + 1));

/**
 * The merge the delivery scenario sends: two state keys, no appended interaction, so the documents (and the events,
 * which carry the whole context) stay at the seeded ~1.7 KB however long the run.
 */
const liveMerge = (session: SeededSession, n: number): string =>
  JSON.stringify({
    query: MERGE,
    variables: { input: { sessionId: session.sessionId, conversationState: { step: n % 12, liveTick: n } } },
  });

const ms = (n: number) => +n.toFixed(2);

function summary(samples: number[]): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(samples).sort();
  return { p50: ms(percentile(sorted, 50)), p99: ms(percentile(sorted, 99)), max: ms(sorted[sorted.length - 1]) };
}

export type LiveDelivery = Awaited<ReturnType<typeof measureLiveDelivery>>;

/**
 * Opens LIVE_SESSIONS × SUBSCRIBERS_PER_SESSION subscribers on the server at `port`, checks that every one receives,
 * warms up, then merges at `mergesPerSecond` for `seconds` and measures, for every (merge, subscriber): from the
 * merge's answer reaching the bench to the event reaching the subscriber (negative when the event came first: the
 * write script publishes before the server answers), and from the merge's sending. CPU of the server, Redis, this
 * process and core 0 over the measured window, as in measure.ts.
 */
export async function measureLiveDelivery(options: {
  port: number;
  pid: number;
  admin: Redis;
  data: DataSet;
  seconds: number;
  warmupSeconds: number;
  /** LIVE_MERGES_PER_SECOND unless BENCH_LIVE_RATE says otherwise. */
  mergesPerSecond: number;
}) {
  const { port, pid, admin, data, seconds, mergesPerSecond: rate } = options;
  const sessions = liveSessions(data);
  const subscribers = await openSubscribers(
    port,
    Array.from({ length: sessions.length * SUBSCRIBERS_PER_SESSION }, (_, i) => sessions[i % sessions.length]),
  );
  try {
    await everyoneListens(port, sessions, subscribers);
    if (options.warmupSeconds > 0) await sendMerges(port, sessions, liveMerge, rate, options.warmupSeconds);

    const before = {
      server: procCpuSeconds(pid),
      redis: await redisCpuSeconds(admin),
      self: process.cpuUsage(),
      core0: coreBusySeconds(0),
      at: performance.now(),
    };
    const { merges, failures, skipped } = await sendMerges(port, sessions, liveMerge, rate, seconds);
    const elapsed = (performance.now() - before.at) / 1000;
    const after = {
      server: procCpuSeconds(pid),
      redis: await redisCpuSeconds(admin),
      self: process.cpuUsage(before.self),
      core0: coreBusySeconds(0),
    };
    await allDelivered(merges, subscribers, sessions);

    const bySession = sessions.map((_, i) => subscribers.filter((_, j) => j % sessions.length === i));
    const fromAnswer: number[] = [];
    const fromSend: number[] = [];
    const answers: number[] = [];
    let missing = 0;
    for (const merge of merges) {
      answers.push(merge.answeredAt - merge.sentAt);
      for (const subscriber of bySession[merge.session]) {
        const receivedAt = subscriber.receipts.get(merge.version);
        if (receivedAt === undefined) {
          missing++;
          continue;
        }
        fromAnswer.push(receivedAt - merge.answeredAt);
        fromSend.push(receivedAt - merge.sentAt);
      }
    }
    const pct = (cpuSeconds: number) => Math.round((cpuSeconds / elapsed) * 100);
    const serverCpu = after.server - before.server;
    return {
      sessions: sessions.length,
      subscribers: subscribers.length,
      askedMergesPerSecond: rate,
      mergesPerSecond: Math.round(merges.length / elapsed),
      merges: merges.length,
      /** Merges not sent because MAX_IN_FLIGHT were waiting for their answers. */
      skippedMerges: skipped,
      mergeFailures: failures.length,
      mergeFailureExample: failures[0],
      events: {
        expected: merges.length * SUBSCRIBERS_PER_SESSION,
        received: fromAnswer.length,
        missing,
        repeats: subscribers.reduce((a, s) => a + s.repeats, 0),
        unexpected: subscribers.flatMap((s) => s.unexpected).slice(0, 3),
        closedEarly: subscribers.filter((s) => s.closed !== undefined).length,
      },
      /** ms from the merge's answer to the event's receipt. */
      fromAnswerMs: summary(fromAnswer),
      /** Share of events received before their merge's answer. */
      beforeAnswer: +(fromAnswer.filter((t) => t < 0).length / Math.max(1, fromAnswer.length)).toFixed(3),
      fromSendMs: summary(fromSend),
      mergeAnswerMs: summary(answers),
      cpu: {
        serverPercent: pct(serverCpu),
        redisPercent: pct(after.redis - before.redis),
        loadGeneratorPercent: pct((after.self.user + after.self.system) / 1e6),
        core0OthersPercent: Math.max(0, pct(after.core0 - before.core0 - serverCpu)),
      },
      /** Server CPU per merge, the fan-out to its 10 subscribers included. */
      serverCpuMicrosPerMerge: Math.round((serverCpu * 1e6) / merges.length),
    };
  } finally {
    await Promise.all(subscribers.map((s) => s.close()));
  }
}

/**
 * graphql-ws does not acknowledge a subscribe, so: one merge per session until every subscriber has received one
 * (a subscription still opening when its session's merge committed misses it and gets the next round's).
 */
async function everyoneListens(port: number, sessions: SeededSession[], subscribers: Subscriber[]): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const { merges } = await sendMerges(port, sessions, liveMerge, 500, sessions.length / 500);
    const version = new Map(merges.map((m) => [m.session, m.version]));
    const seen = await Promise.all(
      subscribers.map((s, i) => s.hasSeen(version.get(i % sessions.length) ?? Infinity, 2000)),
    );
    if (seen.every(Boolean)) return;
  }
  throw new Error("live delivery: some subscribers received nothing after 10 rounds of merges");
}

/** Waits until every subscriber of every answered merge has its event, or GRACE_MS after the last answer. */
async function allDelivered(merges: SentMerge[], subscribers: Subscriber[], sessions: SeededSession[]): Promise<void> {
  const last = new Map<number, number>();
  for (const m of merges) last.set(m.session, Math.max(last.get(m.session) ?? 0, m.version));
  const deadline = performance.now() + GRACE_MS;
  for (const [i, subscriber] of subscribers.entries()) {
    const left = deadline - performance.now();
    if (left <= 0) return;
    await subscriber.hasSeen(last.get(i % sessions.length) ?? 0, left);
  }
}

/** What merge-watched's subscribers received: every acknowledged merge must reach its session's one subscriber. */
export interface WatchedDelivery {
  subscribers: number;
  connections: number;
  /** Merges the load generator saw acknowledged (check, warm-up and measured run). */
  acknowledged: number;
  /** Events received meanwhile (more than acknowledged when merges were in flight as a phase ended). */
  received: number;
  missing: number;
  unexpected: string[];
  closedEarly: number;
}

/**
 * merge-watched's subscribers: one connection per user of `pool`, one subscription per session. `open` resolves
 * once every subscription has received an event (merges of two state keys, appending nothing, so the documents do
 * not grow); `delivered` then waits for the events of the scenario's acknowledged merges.
 */
export class Watchers {
  private constructor(
    private readonly watchers: UserWatcher[],
    private start: number,
  ) {}

  static async open(port: number, pool: readonly (readonly SeededSession[])[]): Promise<Watchers> {
    const watchers: UserWatcher[] = [];
    try {
      for (let i = 0; i < pool.length; i += 20)
        watchers.push(...(await Promise.all(pool.slice(i, i + 20).map((user) => UserWatcher.open(port, user)))));
      const all = new Watchers(watchers, 0);
      await all.everyoneListens(port);
      all.start = all.received();
      return all;
    } catch (error) {
      await new Watchers(watchers, 0).close(port);
      throw error;
    }
  }

  /** Waits until `acknowledged` events have come since `open` (or GRACE_MS); says what came. */
  async delivered(acknowledged: number): Promise<WatchedDelivery> {
    const deadline = performance.now() + GRACE_MS;
    while (this.received() - this.start < acknowledged && performance.now() < deadline) await sleep(20);
    const received = this.received() - this.start;
    return {
      subscribers: this.watchers.reduce((a, w) => a + w.events.length, 0),
      connections: this.watchers.length,
      acknowledged,
      received,
      missing: Math.max(0, acknowledged - received),
      unexpected: this.watchers.flatMap((w) => w.unexpected).slice(0, 3),
      closedEarly: this.watchers.filter((w) => w.closed !== undefined).length,
    };
  }

  /**
   * Closes every connection and waits until the server at `port` has let go of their subscriptions (its Redis
   * unsubscriptions would otherwise land in the next scenario's count of commands).
   */
  async close(port: number): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.close()));
    await untilActive(port, 0);
  }

  private received(): number {
    return this.watchers.reduce((a, w) => a + w.total, 0);
  }

  /**
   * graphql-ws does not acknowledge a subscribe: a merge into each session not yet heard from, until all have. The
   * merges go out PRIMING_IN_FLIGHT at a time, each after the previous one's answer, so a slow server (a loaded
   * machine) only makes this slower.
   */
  private async everyoneListens(port: number): Promise<void> {
    for (let round = 0; round < 5; round++) {
      const silent = this.watchers.flatMap((w) => w.sessions.filter((_, i) => w.events[i] === 0));
      if (silent.length === 0) return;
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < silent.length; i = next++) await mergeOnce(port, silent[i], round * silent.length + i);
      };
      await Promise.all(Array.from({ length: PRIMING_IN_FLIGHT }, worker));
      const deadline = performance.now() + GRACE_MS;
      while (performance.now() < deadline && this.watchers.some((w) => w.events.includes(0))) await sleep(20);
    }
    const silent = this.watchers.reduce((a, w) => a + w.events.filter((n) => n === 0).length, 0);
    if (silent > 0) throw new Error(`merge-watched: ${silent} subscriptions received nothing after 5 rounds of merges`);
  }
}

/** Merges in flight while priming merge-watched's subscribers. */
const PRIMING_IN_FLIGHT = 32;

/** One merge of liveMerge's into `session`, awaited; a failure is left for the next round to retry. */
async function mergeOnce(port: number, session: SeededSession, n: number): Promise<void> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gateway-secret": GATEWAY_SECRET,
        "x-tenant-id": session.tenantId,
        "x-user-id": session.userId,
      },
      body: liveMerge(session, n),
      signal: AbortSignal.timeout(10_000),
    });
    await res.arrayBuffer();
  } catch {
    // the session stays silent: the next round merges into it again
  }
}

export type IdleMemory = Awaited<ReturnType<typeof measureIdleMemory>>;

/** `graphql_subscriptions_active` of sessionContextChanged, from the server's /metrics. */
async function activeSubscriptions(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^graphql_subscriptions_active\{field="sessionContextChanged"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

async function untilActive(port: number, count: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await activeSubscriptions(port)) !== count) {
    if (Date.now() > deadline) throw new Error(`idle memory: ${count} subscriptions never became active`);
    await sleep(100);
  }
}

/**
 * Memory of the server at `port` (started with its inspector on `inspectorPort`) per idle subscriber: after a full
 * GC before and after opening IDLE_SUBSCRIBERS subscriptions, each on its own connection and each to a different
 * user's session (so each also holds a shard channel subscription: the most one subscriber can cost), and once more
 * after closing them all (what is left is not given back).
 */
export async function measureIdleMemory(options: { port: number; inspectorPort: number; data: DataSet }) {
  const { port, data } = options;
  const inspector = await InspectorClient.connect(options.inspectorPort);
  try {
    const users = data.total / data.sessionsPerUser;
    const sessions = Array.from({ length: IDLE_SUBSCRIBERS }, (_, i) =>
      data.session((i % users) * data.sessionsPerUser),
    );
    // Warm: the feed's Redis connection, graphql-ws and the subscription path are set up once, not per subscriber.
    const warm = await openSubscribers(port, sessions.slice(0, 50));
    await untilActive(port, warm.length);
    await Promise.all(warm.map((s) => s.close()));
    await untilActive(port, 0);

    const before = await inspector.memoryAfterGc();
    const subscribers = await openSubscribers(port, sessions);
    await untilActive(port, subscribers.length);
    await sleep(1000);
    const open = await inspector.memoryAfterGc();
    await Promise.all(subscribers.map((s) => s.close()));
    await untilActive(port, 0);
    await sleep(1000);
    const closed = await inspector.memoryAfterGc();

    const perSubscriber = (a: ProcessMemory, b: ProcessMemory) => ({
      heapBytes: Math.round((b.heapUsed - a.heapUsed) / subscribers.length),
      externalBytes: Math.round((b.external - a.external) / subscribers.length),
      rssBytes: Math.round((b.rss - a.rss) / subscribers.length),
    });
    return {
      subscribers: subscribers.length,
      before,
      open,
      closed,
      /** What each open idle subscriber holds: heap used and external memory after a full GC, and RSS. */
      perSubscriber: perSubscriber(before, open),
      /** What is still held per subscriber once they all closed (a leak would show here). */
      leftAfterClose: perSubscriber(before, closed),
    };
  } finally {
    inspector.close();
  }
}
