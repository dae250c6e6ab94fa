import { Args, Ctx, Mutation, Query, Resolver } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import { SessionContext } from "../sessions/session-context.type";
import type { SessionRecord } from "../sessions/session-record";
import type { SessionService } from "../sessions/session.service";
import { SessionContextVersionConnection } from "./session-context-version.type";
import { RestoreSessionArgs, SessionHistoryArgs } from "./session-history.args";

/** History and undo: a session's kept versions, and going back to one of them without losing the others. */
@Resolver()
export class SessionHistoryResolver {
  constructor(private readonly sessionService: SessionService) {}

  @Query(() => SessionContextVersionConnection, {
    description: "A session's kept versions, newest first (the tenant's historyDepth of them). Empty when absent.",
  })
  sessionContextHistory(
    @Args() args: SessionHistoryArgs,
    @Ctx() ctx: RequestContext,
  ): Promise<SessionContextVersionConnection> {
    return this.sessionService.history(ctx, args);
  }

  @Mutation(() => SessionContext, {
    description:
      "Makes the context what it was at `version` (a kept one), as a new write: version + 1, operation RESTORE. The versions in between stay in the history. The session's TTL setting stays as it is.",
  })
  restoreSessionContext(@Args() args: RestoreSessionArgs, @Ctx() ctx: RequestContext): Promise<SessionRecord> {
    return this.sessionService.restore(ctx, args);
  }
}
