import { Field, InputType, Int } from "type-graphql";

@InputType({ description: "Every field optional; an omitted field is unchanged." })
export class TenantSettingsInput {
  @Field(() => Int, { nullable: true })
  defaultTtlSeconds?: number | null;

  @Field(() => Int, { nullable: true })
  orphanThresholdSeconds?: number | null;

  @Field(() => Int, { nullable: true })
  cleanupIntervalSeconds?: number | null;

  @Field(() => Int, { nullable: true })
  maxRecentInteractions?: number | null;

  @Field(() => Int, { nullable: true })
  maxInterruptedQueries?: number | null;

  @Field(() => Int, { nullable: true, description: "0..1000; 0 turns history off (the next write drops the log)." })
  historyDepth?: number | null;
}
