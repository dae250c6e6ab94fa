import { randomUUID } from "node:crypto";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type LogLine, type ServerProcess } from "../helpers/server-process";

/**
 * The scheduled cleanup with several replicas: real server processes against one real Redis. Each tenant's run
 * happens once per interval, on one replica, never two at a time, and a restart of every replica keeps the
 * cadence because the schedule lives in Redis: due times stay on the tenant's grid. How long the restart takes
 * depends on the machine; when it takes longer than an interval, the grid points missed meanwhile collapse into
 * the first run after it — which is what the test checks, rather than a restart faster than one interval.
 */
const INTERVAL_MS = 2000;

interface Run {
  dueAt: number;
  claimedAt: number;
  purged: number;
  start: number;
  end: number;
  replica: string;
}

describe("scheduled orphan cleanup across replicas", () => {
  let redis: RedisProcess;
  /** Every replica started, stopped ones too: their logs still count. */
  const servers = new Map<string, ServerProcess>();

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all([...servers.values()].map((s) => s.stop("SIGKILL"))); // no-op for those already stopped
    await redis.stop();
    removeBuild();
  });

  const start = async (name: string) => {
    const server = await startServerProcess({ REDIS_URL: redis.url, CLEANUP_MIN_INTERVAL_SECONDS: "1" });
    servers.set(name, server);
    return server;
  };

  const runsOf = (tenant: string): Run[] =>
    [...servers.entries()]
      .flatMap(([replica, server]) =>
        server.lines
          .filter((line: LogLine) => line.event === "cleanup.run" && line.tenantId === tenant)
          .map((line) => {
            const end = Date.parse(String(line.time));
            return {
              dueAt: Number(line.dueAt),
              claimedAt: Number(line.claimedAt),
              purged: Number(line.purged),
              end,
              start: end - Number(line.durationMs),
              replica,
            };
          }),
      )
      .sort((a, b) => a.dueAt - b.dueAt);

  const waitForRuns = async (tenant: string, count: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (runsOf(tenant).length < count) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`only ${runsOf(tenant).length} of ${count} runs within ${timeoutMs} ms`);
      // Wake on the next run logged by any replica (or re-check when the wait times out).
      await Promise.race(
        [...servers.values()].map((s) =>
          s
            .waitForLine(
              (l) =>
                l.event === "cleanup.run" && l.tenantId === tenant && !runsOf(tenant).some((r) => r.dueAt === l.dueAt),
              remaining,
            )
            .catch(() => undefined),
        ),
      );
    }
  };

  const post = async (server: ServerProcess, tenant: string, query: string) => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tenant-id": tenant, "x-user-id": "ops", "x-roles": "admin" },
      body: JSON.stringify({ query }),
    });
    return (await response.json()) as { data?: Record<string, Record<string, unknown>>; errors?: unknown[] };
  };

  it("runs each due run exactly once, never two at a time, and keeps the cadence across a full restart", async () => {
    const [a, b] = await Promise.all([start("a"), start("b")]);
    const tenant = `tenant-${randomUUID()}`;
    await post(a, tenant, `mutation { mergeSessionContext(input: {sessionId: "soon-orphan"}) { version } }`);
    const settings = await post(
      a,
      tenant,
      `mutation { updateTenantSettings(input: {cleanupIntervalSeconds: ${INTERVAL_MS / 1000}, orphanThresholdSeconds: 1}) { nextCleanupAt } }`,
    );
    expect(settings.errors).toBeUndefined();

    await waitForRuns(tenant, 3, 6 * INTERVAL_MS);
    // Restart every replica: the schedule is in Redis, so the next run is still due one interval after the last.
    expect(await Promise.all([a.stop(), b.stop()])).toEqual([0, 0]);
    const [c] = await Promise.all([start("c"), start("d")]);
    await waitForRuns(tenant, 6, 6 * INTERVAL_MS);

    const runs = runsOf(tenant);
    const dueTimes = runs.map((r) => r.dueAt);
    expect(new Set(dueTimes).size).toBe(dueTimes.length); // no run twice
    for (let i = 1; i < runs.length; i++) {
      const [previous, run] = [runs[i - 1], runs[i]];
      // On the grid of the first run, through the restart: the schedule was kept, not started again.
      expect((run.dueAt - runs[0].dueAt) % INTERVAL_MS).toBe(0);
      // A grid point without its own run had already passed when the previous run was claimed: it collapsed
      // into that run. Any other gap would be a skipped run.
      for (let missed = previous.dueAt + INTERVAL_MS; missed < run.dueAt; missed += INTERVAL_MS) {
        expect(missed).toBeLessThanOrEqual(previous.claimedAt);
      }
      expect(run.start).toBeGreaterThanOrEqual(previous.end); // never two at a time
    }
    expect(runs.reduce((sum, r) => sum + r.purged, 0)).toBe(1); // the one orphan, deleted once

    const recorded = await post(c, tenant, `{ tenantSettings { lastCleanupAt lastCleanupPurged nextCleanupAt } }`);
    const tenantSettings = recorded.data?.tenantSettings;
    expect(Date.parse(String(tenantSettings?.nextCleanupAt))).toBeGreaterThan(runs[runs.length - 1].dueAt);
    expect(tenantSettings?.lastCleanupAt).not.toBeNull();
  }, 60_000);
});
