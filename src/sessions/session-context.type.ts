import { DateTimeResolver, GraphQLJSONObject } from "graphql-scalars";
import { Directive, Field, ID, Int, ObjectType } from "type-graphql";
import type { JsonObject } from "./session-record";

@Directive('@key(fields: "userId sessionId")')
@ObjectType({ description: "The context of one assistant session of one user of one tenant." })
export class SessionContext {
  @Field(() => ID, { description: "Stable and opaque, unique per (tenant, user, session)." })
  id!: string;

  @Field(() => ID)
  tenantId!: string;

  @Field(() => ID)
  userId!: string;

  @Field(() => ID)
  sessionId!: string;

  @Field(() => GraphQLJSONObject)
  conversationState!: JsonObject;

  @Field(() => [String])
  interruptedQueries!: string[];

  @Field(() => [GraphQLJSONObject])
  recentInteractions!: JsonObject[];

  @Field(() => GraphQLJSONObject)
  userPreferences!: JsonObject;

  @Field(() => DateTimeResolver, { description: "When the session was first stored." })
  storedAt!: Date;

  @Field(() => DateTimeResolver, { description: "When the session was last written." })
  lastUpdated!: Date;

  @Field(() => DateTimeResolver, { description: "When the session expires unless written again." })
  expiresAt!: Date;

  @Field(() => Int)
  ttlSeconds!: number;

  @Field(() => Int, { description: "1 on create, +1 on every write." })
  version!: number;
}
