import { DateTimeResolver, GraphQLJSONObject } from "graphql-scalars";
import { ArgsType, Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { SessionOperation } from "../history/session-context-version.type";
import { SessionContext } from "../sessions/session-context.type";
import type { JsonObject } from "../sessions/session-record";

export enum SessionEventType {
  UPDATED = "UPDATED",
  DELETED = "DELETED",
}
registerEnumType(SessionEventType, { name: "SessionEventType", description: "A session written, or deleted." });

@ObjectType({ description: "One change of one session, as `sessionContextChanged` delivers it." })
export class SessionContextEvent {
  @Field(() => SessionEventType)
  type!: SessionEventType;

  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID)
  userId!: string;

  @Field(() => Int, { description: "UPDATED: the new version; DELETED: the last version it had." })
  version!: number;

  @Field(() => SessionOperation, { nullable: true, description: "UPDATED only (null for a resync)." })
  operation!: SessionOperation | null;

  @Field(() => GraphQLJSONObject, {
    nullable: true,
    description: "UPDATED only (null for a resync): what the write was given, as in the history.",
  })
  change!: JsonObject | null;

  @Field(() => SessionContext, { nullable: true, description: "UPDATED only: the whole context after the write." })
  context!: SessionContext | null;

  @Field({
    description:
      "True when this event stands for changes that could not be replayed one by one: UPDATED with the current context, or DELETED when the session is gone.",
  })
  resync!: boolean;
}

@ObjectType({ description: "A session of one user created, written or deleted." })
export class UserSessionEvent {
  @Field(() => SessionEventType)
  type!: SessionEventType;

  @Field(() => ID)
  sessionId!: string;

  @Field(() => Int, { description: "UPDATED: the new version; DELETED: the last version it had." })
  version!: number;

  @Field(() => DateTimeResolver, { description: "UPDATED: the write's time; DELETED: the deletion's." })
  lastUpdated!: Date;
}

@ArgsType()
export class SessionContextChangedArgs {
  @Field(() => ID)
  sessionId!: string;

  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;

  @Field(() => Int, {
    nullable: true,
    description:
      "Replay the kept changes after this version first (0: from the start). Unset: live changes only, from now.",
  })
  afterVersion?: number | null;
}

@ArgsType()
export class UserSessionsChangedArgs {
  @Field(() => ID, { nullable: true, description: "Default: the caller." })
  userId?: string | null;
}
