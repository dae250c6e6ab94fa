import type { Caller } from "../auth/caller";
import type { LiveConnection } from "../live/live-updates";
import { UnauthenticatedError } from "../errors/errors";
import { createSessionLoader, type SessionLoader } from "../sessions/session-loader";
import type { TimedSessionStore } from "../store/timed-session-store";

/**
 * Everything one GraphQL request knows: who is calling, its view of the store (timed for this request) and its
 * loaders. Created by the context factory for each request and dropped with it; nothing here outlives the request.
 */
export class RequestContext {
  private loader: SessionLoader | undefined;

  constructor(
    readonly requestId: string,
    /** Undefined only for the anonymous `{ _service { sdl } }` request. */
    private readonly identity: Caller | undefined,
    /** The session store, as this request sees it: every call timed into its store time. */
    readonly store: TimedSessionStore,
    /** The WebSocket or SSE connection a subscription runs on; undefined for HTTP requests. */
    readonly live?: LiveConnection,
  ) {}

  get caller(): Caller {
    if (this.identity === undefined) throw new UnauthenticatedError("this operation needs credentials");
    return this.identity;
  }

  get tenantId(): string | undefined {
    return this.identity?.tenantId;
  }

  /** The request's batching loader of the caller's tenant's sessions (one MGET per tick). */
  get sessionLoader(): SessionLoader {
    this.loader ??= createSessionLoader(this.store, this.caller.tenantId);
    return this.loader;
  }
}
