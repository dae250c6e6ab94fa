import { GraphQLJSONObject } from "graphql-scalars";
import { Field, ID, InputType, Int } from "type-graphql";
import type { JsonObject } from "./session-record";

@InputType({ description: "A store (replace) or merge of one session's context." })
export class SessionContextInput {
  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;

  @Field(() => GraphQLJSONObject, { nullable: true })
  conversationState?: JsonObject | null;

  @Field(() => [String], { nullable: true })
  interruptedQueries?: string[] | null;

  @Field(() => [GraphQLJSONObject], { nullable: true })
  recentInteractions?: JsonObject[] | null;

  @Field(() => GraphQLJSONObject, { nullable: true })
  userPreferences?: JsonObject | null;

  @Field(() => Int, {
    nullable: true,
    description: "Default: the session's own TTL, else the tenant's default (24 h).",
  })
  ttlSeconds?: number | null;

  @Field(() => Int, {
    nullable: true,
    description: "Optimistic concurrency: write only if the stored version equals this (absent session = 0).",
  })
  expectedVersion?: number | null;
}
