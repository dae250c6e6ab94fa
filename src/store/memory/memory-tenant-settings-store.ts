import type { CleanupSchedule, DueCleanup } from "../../cleanup/cleanup-schedule";
import { SETTING_NAMES, type TenantSettingsRecord, type TenantSettingsValues } from "../../tenants/tenant-settings";
import type { TenantSettingsStore } from "../../tenants/tenant-settings-store";

interface TenantState {
  values: Partial<TenantSettingsValues>;
  lastCleanupAt: number | null;
  lastCleanupPurged: number | null;
}

/**
 * The embedded store's tenant settings and cleanup schedule, in one object because they share state, as the
 * Redis settings hash and schedule do. One process only: the lease and claim rules still hold within it.
 */
export class MemoryTenantState implements TenantSettingsStore, CleanupSchedule {
  private readonly tenants = new Map<string, TenantState>();
  private readonly schedule = new Map<string, number>();
  private readonly leases = new Map<string, { token: string; until: number }>();
  private leaseCounter = 0;

  /** `defaults`: what a tenant has until it sets its own (normally DEFAULT_TENANT_SETTINGS). */
  constructor(
    private readonly defaults: Readonly<TenantSettingsValues>,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The settings the tenant has set itself (the rest fall back to defaults). */
  ownValues(tenantId: string): Partial<TenantSettingsValues> {
    return this.tenants.get(tenantId)?.values ?? {};
  }

  /** The values that apply to a tenant now (its own, else the defaults). */
  private values(tenantId: string): TenantSettingsValues {
    return { ...this.defaults, ...this.tenants.get(tenantId)?.values };
  }

  async get(tenantId: string): Promise<TenantSettingsRecord> {
    const state = this.tenants.get(tenantId);
    const next = this.schedule.get(tenantId);
    return {
      tenantId,
      ...this.values(tenantId),
      lastCleanupAt: state?.lastCleanupAt != null ? new Date(state.lastCleanupAt) : null,
      lastCleanupPurged: state?.lastCleanupPurged ?? null,
      nextCleanupAt: next !== undefined ? new Date(next) : null,
    };
  }

  async update(tenantId: string, patch: Partial<TenantSettingsValues>): Promise<TenantSettingsRecord> {
    const state = this.state(tenantId);
    for (const name of SETTING_NAMES) if (patch[name] !== undefined) state.values[name] = patch[name];
    const at = this.clock() + this.values(tenantId).cleanupIntervalSeconds * 1000;
    this.putOnSchedule(tenantId, at, patch.cleanupIntervalSeconds !== undefined ? "replace" : "ifAbsent");
    return this.get(tenantId);
  }

  async now(): Promise<number> {
    return this.clock();
  }

  async due(now: number, limit: number): Promise<DueCleanup[]> {
    return [...this.schedule]
      .filter(([, dueAt]) => dueAt <= now)
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit)
      .map(([tenantId, dueAt]) => ({ tenantId, dueAt }));
  }

  async claim(tenantId: string, dueAt: number, nextAt: number): Promise<boolean> {
    if (this.schedule.get(tenantId) !== dueAt) return false;
    this.schedule.set(tenantId, nextAt);
    return true;
  }

  async scheduleFirstRun(tenantId: string, at: number): Promise<void> {
    this.putOnSchedule(tenantId, at, "ifAbsent");
  }

  async reschedule(tenantId: string, at: number): Promise<void> {
    this.putOnSchedule(tenantId, at, "replace");
  }

  async nextRun(tenantId: string): Promise<number | null> {
    return this.schedule.get(tenantId) ?? null;
  }

  async acquireLease(tenantId: string, ttlMs: number): Promise<string | null> {
    const now = this.clock();
    const held = this.leases.get(tenantId);
    if (held && held.until > now) return null;
    const token = `lease-${++this.leaseCounter}`;
    this.leases.set(tenantId, { token, until: now + ttlMs });
    return token;
  }

  async releaseLease(tenantId: string, token: string): Promise<void> {
    if (this.leases.get(tenantId)?.token === token) this.leases.delete(tenantId);
  }

  async recordRun(tenantId: string, at: number, purged: number): Promise<void> {
    const state = this.state(tenantId);
    state.lastCleanupAt = at;
    state.lastCleanupPurged = purged;
  }

  /**
   * Where both ways onto the schedule meet. Synchronous, like everything here: `update` returns its record with the
   * new due time, and a session write and its scheduling happen in one step.
   */
  private putOnSchedule(tenantId: string, at: number, mode: "ifAbsent" | "replace"): void {
    if (mode === "replace" || !this.schedule.has(tenantId)) this.schedule.set(tenantId, at);
  }

  private state(tenantId: string): TenantState {
    let state = this.tenants.get(tenantId);
    if (!state) {
      state = { values: {}, lastCleanupAt: null, lastCleanupPurged: null };
      this.tenants.set(tenantId, state);
    }
    return state;
  }
}
