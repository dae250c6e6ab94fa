/** A cleanup run that is due: the tenant and the time it was due (ms). */
export interface DueCleanup {
  readonly tenantId: string;
  readonly dueAt: number;
}

/**
 * The shared cleanup schedule of all tenants, kept in the store so that restarts and replicas agree on it.
 * Each due run is claimed by moving its due time forward atomically: only one replica's claim can succeed.
 */
export interface CleanupSchedule {
  /** The store's clock in ms, so that every replica measures due times alike. */
  now(): Promise<number>;
  /** Up to `limit` tenants whose run is due at `now`, earliest first. */
  due(now: number, limit: number): Promise<DueCleanup[]>;
  /** Moves the tenant's next run from `dueAt` to `nextAt`; false when another replica already did. */
  claim(tenantId: string, dueAt: number, nextAt: number): Promise<boolean>;
  /**
   * Puts the tenant on the schedule with its first run at `at`, unless it is on it already: after the tenant's first
   * write, or a settings change that leaves its interval alone. The one place a tenant joins the schedule.
   */
  scheduleFirstRun(tenantId: string, at: number): Promise<void>;
  /** Sets the tenant's next run to `at`, whether it was on the schedule or not (after a change of its interval). */
  reschedule(tenantId: string, at: number): Promise<void>;
  /** The tenant's next run, or null when none is scheduled. */
  nextRun(tenantId: string): Promise<number | null>;
  /** A lease that keeps two runs of one tenant from overlapping; null when another holder has it. */
  acquireLease(tenantId: string, ttlMs: number): Promise<string | null>;
  /** Releases the lease only if `token` still holds it. */
  releaseLease(tenantId: string, token: string): Promise<void>;
  /** Records a finished run in the tenant's settings (lastCleanupAt, lastCleanupPurged). */
  recordRun(tenantId: string, at: number, purged: number): Promise<void>;
}
