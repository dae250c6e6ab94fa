import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { SessionStore } from "../sessions/session-store";
import type { TenantSettingsStore } from "../tenants/tenant-settings-store";
import type { CleanupSchedule } from "./cleanup-schedule";

/** Options of the cleanup scheduler. */
export interface CleanupSchedulerOptions {
  schedule: CleanupSchedule;
  settings: TenantSettingsStore;
  sessions: SessionStore;
  logger: Logger;
  /** How often to look for due runs, in ms. */
  tickMs: number;
  /** Longest one run may hold its tenant's lease; a crashed replica's lease frees itself after this. Default 10 min. */
  leaseMs?: number;
  /** Tenants looked at per tick. Default 20. */
  tenantsPerTick?: number;
}

/**
 * Runs each tenant's orphan cleanup on the tenant's own interval. The schedule lives in the store, so a restart
 * neither skips nor repeats a run, and any number of replicas may run this: a run happens on the replica that
 * atomically moves its due time forward (claim), and a per-tenant lease keeps two runs from overlapping.
 *
 * Cadence: runs stay on the tenant's grid — due times one interval apart, counted from its first run. The next run
 * is due one interval after the one just claimed; when the run was claimed more than an interval late (every
 * replica down, or busy, for longer than an interval), the grid points that passed meanwhile collapse into this one
 * run and the next is the first grid point still ahead (a purge is idempotent, so running it several times back
 * to back would only repeat the same work).
 */
export class CleanupScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = true;
  private stopRequested = false;

  constructor(private readonly options: CleanupSchedulerOptions) {}

  start(): void {
    this.stopped = false;
    this.stopRequested = false;
    this.arm();
  }

  /** Stops looking for runs and waits for a run in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopRequested = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the due runs; returns how many this replica ran. Exposed for tests and the tick. */
  async runDue(): Promise<number> {
    const { schedule, settings, sessions, logger } = this.options;
    const now = await schedule.now();
    let ran = 0;
    for (const { tenantId, dueAt } of await schedule.due(now, this.options.tenantsPerTick ?? 20)) {
      if (this.stopRequested) break;
      const tenant = await settings.get(tenantId);
      const interval = tenant.cleanupIntervalSeconds * 1000;
      const nextAt = dueAt + (Math.floor((now - dueAt) / interval) + 1) * interval;
      const lease = await schedule.acquireLease(tenantId, this.options.leaseMs ?? 600_000);
      if (lease === null) continue; // a run of this tenant is still going elsewhere; try again next tick
      try {
        if (!(await schedule.claim(tenantId, dueAt, nextAt))) continue; // another replica took this run
        const started = performance.now();
        const purged = await sessions.purgeOrphans(tenantId, tenant.orphanThresholdSeconds);
        await schedule.recordRun(tenantId, now, purged);
        ran++;
        logger.info(
          {
            event: "cleanup.run",
            tenantId,
            dueAt,
            claimedAt: now,
            nextAt,
            purged,
            durationMs: performance.now() - started,
          },
          "scheduled cleanup ran",
        );
      } finally {
        await schedule.releaseLease(tenantId, lease);
      }
    }
    return ran;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runDue()
        .then(() => undefined)
        .catch((error: unknown) =>
          this.options.logger.warn({ err: error, event: "cleanup.error" }, "cleanup pass failed"),
        )
        .finally(() => this.arm());
    }, this.options.tickMs);
  }
}
