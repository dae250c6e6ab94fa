import { Arg, Args, Ctx, ID, Int, Mutation, Query, Resolver } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import { SessionContextConnection } from "./session-connection.type";
import type { SessionService } from "./session.service";
import { UserSessionsArgs } from "./user-sessions.args";

/** Resume and erasure: a user's sessions as a list, and deleting them. */
@Resolver()
export class SessionListResolver {
  constructor(private readonly sessionService: SessionService) {}

  @Query(() => SessionContextConnection, { description: "A user's sessions, newest last write first." })
  userSessions(@Args() args: UserSessionsArgs, @Ctx() ctx: RequestContext) {
    return this.sessionService.list(ctx, args);
  }

  @Mutation(() => Boolean, { description: "Deletes one session; true when it existed." })
  deleteSessionContext(
    @Arg("sessionId", () => ID) sessionId: string,
    @Arg("userId", () => ID, { nullable: true }) userId: string | null | undefined,
    @Ctx() ctx: RequestContext,
  ): Promise<boolean> {
    return this.sessionService.delete(ctx, sessionId, userId);
  }

  @Mutation(() => Int, { description: "Erasure: deletes every session of the user; returns how many there were." })
  deleteUserSessions(
    @Arg("userId", () => ID, { nullable: true }) userId: string | null | undefined,
    @Ctx() ctx: RequestContext,
  ): Promise<number> {
    return this.sessionService.deleteUser(ctx, userId);
  }
}
