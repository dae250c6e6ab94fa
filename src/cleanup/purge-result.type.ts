import { Field, Float, ID, Int, ObjectType } from "type-graphql";

@ObjectType()
export class PurgeResult {
  @Field(() => ID)
  tenantId!: string;

  @Field(() => Int, { description: "Sessions deleted (not index entries of sessions that had already expired)." })
  purgedCount!: number;

  @Field(() => Int)
  thresholdSeconds!: number;

  @Field(() => Float)
  durationMs!: number;
}
