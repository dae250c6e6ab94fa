import { ArgsType, Field, ID } from "type-graphql";

@ArgsType()
export class SessionRefArgs {
  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;
}
