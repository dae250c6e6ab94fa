import type { TenantSettingsRecord, TenantSettingsValues } from "./tenant-settings";

/** A tenant's settings; a tenant that never changed them has the defaults. */
export interface TenantSettingsStore {
  get(tenantId: string): Promise<TenantSettingsRecord>;
  /** Applies the given fields (validated by the caller); the rest stay as they are. */
  update(tenantId: string, patch: Partial<TenantSettingsValues>): Promise<TenantSettingsRecord>;
}
