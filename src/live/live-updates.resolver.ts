import { GraphQLError } from "graphql";
import { Args, Ctx, Resolver, Root, Subscription } from "type-graphql";
import type { RequestContext } from "../context/request-context";
import { ErrorCode } from "../errors/error-code";
import type { LiveConnection, UserSessionEventValue } from "./live-updates";
import type { SessionContextEventValue, StreamItem } from "./session-change-stream";
import {
  SessionContextChangedArgs,
  SessionContextEvent,
  UserSessionEvent,
  UserSessionsChangedArgs,
} from "./session-events.type";

/**
 * The connection a subscription runs on, which carries the server's LiveUpdates: type-graphql calls `subscribe`
 * without a resolver instance, and one process may serve several schemas (tests), so it travels in the context.
 */
function liveOf(context: unknown): LiveConnection {
  const live = (context as RequestContext).live;
  if (live === undefined) {
    throw new GraphQLError(
      "subscriptions are served over WebSocket (graphql-ws, on /graphql) and SSE (graphql-sse, on /graphql/stream)",
      { extensions: { code: ErrorCode.BAD_REQUEST } },
    );
  }
  return live;
}

/**
 * What `sessionContextChanged` resolves each item of its stream to: the event, or the error that ends the stream.
 * schema.ts installs it as the field's resolver itself, in place of type-graphql's wrapper of the method below
 * (which converts the arguments into an instance on every event).
 */
export function sessionEventOf(item: StreamItem): SessionContextEventValue {
  if ("error" in item) throw item.error;
  return item.event;
}

/** Live updates: one session's changes, and a user's session list changes, pushed as they happen. */
@Resolver()
export class LiveUpdatesResolver {
  @Subscription(() => SessionContextEvent, {
    description:
      "Every change of one session, in version order, with no gap and no repeat. With `afterVersion`, first the changes after that version (from the kept history), then live ones; when the kept history does not reach back that far, one UPDATED event with resync: true and the current context comes first (DELETED with resync: true when the session is gone).",
    subscribe: ({ args, context }) => liveOf(context).updates.sessionContextChanged(context as RequestContext, args),
  })
  /**
   * Reads nothing but the item it is given, whatever the args and whoever asks: live-subscribe.ts executes it once
   * for every subscriber that shares an event (and counts each delivery there).
   */
  sessionContextChanged(@Root() item: StreamItem, @Args() _args: SessionContextChangedArgs): SessionContextEventValue {
    return sessionEventOf(item);
  }

  @Subscription(() => UserSessionEvent, {
    description: 'Sessions of one user created, written or deleted (for a "continue where you left off" list).',
    subscribe: ({ args, context }) => liveOf(context).updates.userSessionsChanged(context as RequestContext, args),
  })
  userSessionsChanged(
    @Root() event: UserSessionEventValue,
    @Args() _args: UserSessionsChangedArgs,
    @Ctx() ctx: RequestContext,
  ): UserSessionEventValue {
    liveOf(ctx).updates.delivered("userSessionsChanged", event.lastUpdated.getTime());
    return event;
  }
}
