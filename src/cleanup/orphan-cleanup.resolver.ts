import { performance } from "node:perf_hooks";
import { Arg, Authorized, Ctx, Int, Mutation, Resolver } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import { BadUserInputError } from "../errors/errors";
import type { TenantSettingsStore } from "../tenants/tenant-settings-store";
import { PurgeResult } from "./purge-result.type";

@Resolver()
export class OrphanCleanupResolver {
  constructor(
    private readonly settings: TenantSettingsStore,
    private readonly maxTtlSeconds: number,
  ) {}

  @Authorized("admin")
  @Mutation(() => PurgeResult, {
    description:
      "Deletes the caller's tenant's sessions with no write for olderThanSeconds (default: the tenant's orphanThresholdSeconds). Role: admin.",
  })
  async purgeOrphans(
    @Arg("olderThanSeconds", () => Int, { nullable: true }) olderThanSeconds: number | null | undefined,
    @Ctx() ctx: RequestContext,
  ): Promise<PurgeResult> {
    const tenantId = ctx.caller.tenantId;
    if (olderThanSeconds !== null && olderThanSeconds !== undefined) {
      if (olderThanSeconds < 1 || olderThanSeconds > this.maxTtlSeconds) {
        throw new BadUserInputError(
          "olderThanSeconds",
          `must be between 1 and ${this.maxTtlSeconds} (MAX_TTL_SECONDS)`,
        );
      }
    }
    const thresholdSeconds = olderThanSeconds ?? (await this.settings.get(tenantId)).orphanThresholdSeconds;
    const started = performance.now();
    const purgedCount = await ctx.store.purgeOrphans(tenantId, thresholdSeconds);
    return { tenantId, purgedCount, thresholdSeconds, durationMs: performance.now() - started };
  }
}
