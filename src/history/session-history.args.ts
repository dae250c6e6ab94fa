import { ArgsType, Field, ID, Int } from "type-graphql";

@ArgsType()
export class SessionHistoryArgs {
  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;

  @Field(() => Int, { defaultValue: 20, description: "1..100." })
  first!: number;

  @Field(() => String, { nullable: true, description: "The endCursor of the previous page." })
  after?: string | null;
}

@ArgsType()
export class RestoreSessionArgs {
  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;

  @Field(() => Int, { description: "One of the kept versions." })
  version!: number;

  @Field(() => Int, {
    nullable: true,
    description: "Optimistic concurrency: restore only if the stored version equals this.",
  })
  expectedVersion?: number | null;
}
