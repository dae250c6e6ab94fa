import { BadUserInputError } from "../errors/errors";

/** The settings a tenant's admin may change. */
export interface TenantSettingsValues {
  defaultTtlSeconds: number;
  orphanThresholdSeconds: number;
  cleanupIntervalSeconds: number;
  maxRecentInteractions: number;
  maxInterruptedQueries: number;
  /** Versions each session keeps in its change log; 0: no history. */
  historyDepth: number;
}

/** What every tenant has until its admin changes it. */
export const DEFAULT_TENANT_SETTINGS: Readonly<TenantSettingsValues> = Object.freeze({
  defaultTtlSeconds: 86_400,
  orphanThresholdSeconds: 172_800,
  cleanupIntervalSeconds: 86_400,
  maxRecentInteractions: 100,
  maxInterruptedQueries: 100,
  historyDepth: 20,
});

export const SETTING_NAMES = Object.keys(DEFAULT_TENANT_SETTINGS) as (keyof TenantSettingsValues)[];

/** A tenant's settings with its cleanup bookkeeping. */
export interface TenantSettingsRecord extends TenantSettingsValues {
  tenantId: string;
  lastCleanupAt: Date | null;
  lastCleanupPurged: number | null;
  nextCleanupAt: Date | null;
}

export interface SettingsBounds {
  maxTtlSeconds: number;
  cleanupMinIntervalSeconds: number;
}

/** Checks a settings change; BAD_USER_INPUT names the first field out of range. */
export function validateSettingsPatch(patch: Partial<TenantSettingsValues>, bounds: SettingsBounds): void {
  const ranges: Record<keyof TenantSettingsValues, [number, number, string]> = {
    defaultTtlSeconds: [1, bounds.maxTtlSeconds, "MAX_TTL_SECONDS"],
    orphanThresholdSeconds: [1, bounds.maxTtlSeconds, "MAX_TTL_SECONDS"],
    cleanupIntervalSeconds: [
      bounds.cleanupMinIntervalSeconds,
      bounds.maxTtlSeconds,
      "CLEANUP_MIN_INTERVAL_SECONDS..MAX_TTL_SECONDS",
    ],
    maxRecentInteractions: [1, 10_000, ""],
    maxInterruptedQueries: [1, 10_000, ""],
    historyDepth: [0, 1000, ""],
  };
  for (const name of SETTING_NAMES) {
    const value = patch[name];
    if (value === undefined) continue;
    const [min, max, source] = ranges[name];
    if (value < min || value > max) {
      throw new BadUserInputError(`input.${name}`, `must be between ${min} and ${max}${source ? ` (${source})` : ""}`);
    }
  }
}
