import { ArgsType, Field, ID, Int } from "type-graphql";

@ArgsType()
export class UserSessionsArgs {
  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;

  @Field(() => Int, { defaultValue: 20, description: "1..100." })
  first!: number;

  @Field(() => String, { nullable: true, description: "The endCursor of the previous page." })
  after?: string | null;
}
