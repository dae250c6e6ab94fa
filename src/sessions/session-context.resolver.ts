import type { GraphQLResolveInfo } from "graphql";
import { Arg, Args, Ctx, Info, Mutation, Query, Resolver } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import { selectsContext } from "./selects-context";
import { SessionContextInput } from "./session-context.input";
import { SessionContext } from "./session-context.type";
import type { SessionRecord } from "./session-record";
import { SessionRefArgs } from "./session-ref.args";
import type { SessionService } from "./session.service";

@Resolver(() => SessionContext)
export class SessionContextResolver {
  constructor(private readonly sessionService: SessionService) {}

  @Query(() => SessionContext, { nullable: true, description: "null when absent or expired." })
  sessionContext(@Args() ref: SessionRefArgs, @Ctx() ctx: RequestContext): Promise<SessionRecord | null> {
    return this.sessionService.read(ctx, ref.sessionId, ref.userId);
  }

  @Mutation(() => SessionContext, { description: "Replaces the whole context; omitted fields become empty." })
  storeSessionContext(
    @Arg("input", () => SessionContextInput) input: SessionContextInput,
    @Ctx() ctx: RequestContext,
    @Info() info: GraphQLResolveInfo,
  ): Promise<SessionRecord> {
    return this.sessionService.store(ctx, input, selectsContext(info));
  }

  @Mutation(() => SessionContext, {
    description: "Shallow-merges conversationState and userPreferences, appends the lists; creates when absent.",
  })
  mergeSessionContext(
    @Arg("input", () => SessionContextInput) input: SessionContextInput,
    @Ctx() ctx: RequestContext,
    @Info() info: GraphQLResolveInfo,
  ): Promise<SessionRecord> {
    return this.sessionService.merge(ctx, input, selectsContext(info));
  }
}
