import { Field, Int, ObjectType } from "type-graphql";
import type { SessionRecord } from "./session-record";
import { SessionContext } from "./session-context.type";

@ObjectType()
export class SessionContextEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => SessionContext)
  node!: SessionRecord;
}

@ObjectType()
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

@ObjectType({ description: "A user's sessions, newest last write first." })
export class SessionContextConnection {
  @Field(() => [SessionContextEdge])
  edges!: SessionContextEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: "The user's live sessions." })
  totalCount!: number;
}
