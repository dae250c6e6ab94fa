import { DateTimeResolver } from "graphql-scalars";
import { Field, ID, Int, ObjectType } from "type-graphql";

@ObjectType({ description: "A tenant's session policy and its cleanup bookkeeping." })
export class TenantSettings {
  @Field(() => ID)
  tenantId!: string;

  @Field(() => Int, { description: "TTL of a write that names none and of a session without its own. Default 86400." })
  defaultTtlSeconds!: number;

  @Field(() => Int, { description: "A session with no write for this long is an orphan. Default 172800 (48 h)." })
  orphanThresholdSeconds!: number;

  @Field(() => Int, { description: "How often the scheduled cleanup runs. Default 86400 (daily)." })
  cleanupIntervalSeconds!: number;

  @Field(() => Int, { description: "Writes keep only the newest this many recentInteractions. Default 100." })
  maxRecentInteractions!: number;

  @Field(() => Int, { description: "Writes keep only the newest this many interruptedQueries. Default 100." })
  maxInterruptedQueries!: number;

  @Field(() => Int, {
    description:
      "Versions each session keeps in its history (sessionContextHistory, restoreSessionContext). Default 20; 0: off.",
  })
  historyDepth!: number;

  @Field(() => DateTimeResolver, { nullable: true })
  lastCleanupAt!: Date | null;

  @Field(() => Int, { nullable: true, description: "Sessions the last scheduled cleanup deleted." })
  lastCleanupPurged!: number | null;

  @Field(() => DateTimeResolver, { nullable: true })
  nextCleanupAt!: Date | null;
}
