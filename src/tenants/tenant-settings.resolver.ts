import { Arg, Authorized, Ctx, Mutation, Query, Resolver } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import {
  SETTING_NAMES,
  validateSettingsPatch,
  type SettingsBounds,
  type TenantSettingsRecord,
  type TenantSettingsValues,
} from "./tenant-settings";
import type { TenantSettingsStore } from "./tenant-settings-store";
import { TenantSettingsInput } from "./tenant-settings.input";
import { TenantSettings } from "./tenant-settings.type";

@Resolver(() => TenantSettings)
export class TenantSettingsResolver {
  constructor(
    private readonly settings: TenantSettingsStore,
    private readonly bounds: SettingsBounds,
  ) {}

  @Authorized("service")
  @Query(() => TenantSettings, { description: "The caller's tenant's settings. Roles: service or admin." })
  tenantSettings(@Ctx() ctx: RequestContext): Promise<TenantSettingsRecord> {
    return this.settings.get(ctx.caller.tenantId);
  }

  @Authorized("admin")
  @Mutation(() => TenantSettings, {
    description: "Changes the caller's tenant's settings from the next operation on. Role: admin.",
  })
  updateTenantSettings(
    @Arg("input", () => TenantSettingsInput) input: TenantSettingsInput,
    @Ctx() ctx: RequestContext,
  ): Promise<TenantSettingsRecord> {
    const patch: Partial<TenantSettingsValues> = {};
    for (const name of SETTING_NAMES) {
      const value = input[name];
      if (value !== undefined && value !== null) patch[name] = value;
    }
    validateSettingsPatch(patch, this.bounds);
    return this.settings.update(ctx.caller.tenantId, patch);
  }
}
