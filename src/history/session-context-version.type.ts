import { DateTimeResolver, GraphQLJSONObject } from "graphql-scalars";
import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { PageInfo } from "../sessions/session-connection.type";
import type { JsonObject } from "../sessions/session-record";
import type { SessionOperationName } from "./history-entry";

export enum SessionOperation {
  STORE = "STORE",
  MERGE = "MERGE",
  RESTORE = "RESTORE",
}
registerEnumType(SessionOperation, { name: "SessionOperation", description: "The kind of write that made a version." });

@ObjectType({
  description:
    "A session's context as it was at one version. Not a SessionContext on purpose: it has no id, so a client cache that normalizes SessionContext by id never overwrites the current session with an old state.",
})
export class SessionContextSnapshot {
  @Field(() => GraphQLJSONObject)
  conversationState!: JsonObject;

  @Field(() => [String])
  interruptedQueries!: string[];

  @Field(() => [GraphQLJSONObject])
  recentInteractions!: JsonObject[];

  @Field(() => GraphQLJSONObject)
  userPreferences!: JsonObject;

  @Field(() => Int, { description: "The TTL the write set." })
  ttlSeconds!: number;
}

@ObjectType({ description: "One kept version of a session: what a write was given, who made it, and the result." })
export class SessionContextVersion {
  @Field(() => ID, { description: "Unique per (session, version): clients normalize on it." })
  id!: string;

  @Field(() => Int, { description: "The version this write produced." })
  version!: number;

  @Field(() => DateTimeResolver, { description: "When (Redis time)." })
  at!: Date;

  @Field(() => SessionOperation)
  operation!: SessionOperationName;

  @Field(() => ID, { description: "Who wrote it: the caller's user id (a service writing for a user is the service)." })
  actorUserId!: string;

  @Field(() => [String])
  actorRoles!: string[];

  @Field(() => GraphQLJSONObject, {
    description:
      'What the write was given: the context fields of its input as sent (a store: the whole context; a merge: the fields it merged; a restore: {"restoredVersion": n}).',
  })
  change!: JsonObject;

  @Field(() => SessionContextSnapshot, { description: "The whole context as it was right after this write." })
  context!: SessionContextSnapshot;
}

@ObjectType()
export class SessionContextVersionEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => SessionContextVersion)
  node!: SessionContextVersion;
}

@ObjectType({ description: "A session's kept versions, newest first." })
export class SessionContextVersionConnection {
  @Field(() => [SessionContextVersionEdge])
  edges!: SessionContextVersionEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
