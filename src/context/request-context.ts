import type { Context as TraceContext } from "@opentelemetry/api";
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
  /**
   * The trace context of this operation's span, set by the tracing rule when tracing is on: root fields and store
   * calls start their spans under it.
   */
  trace: TraceContext | undefined;
  /**
   * Whether this operation's answers are written by writeJson (json-answer.ts), which copies stored JSON (JsonText)
   * as it is: every HTTP answer is (the prepared lane, and Apollo through its `stringifyResult`); on a live
   * connection, live-subscribe.ts sets it for the `sessionContextChanged` events it sends itself. Other subscription
   * messages are serialized by graphql-ws and graphql-sse with JSON.stringify.
   */
  answerWritesJsonText: boolean;

  constructor(
    readonly requestId: string,
    /** Undefined only for the anonymous `{ _service { sdl } }` request. */
    private readonly identity: Caller | undefined,
    /** The session store, as this request sees it: every call timed into its store time. */
    readonly store: TimedSessionStore,
    /** The WebSocket or SSE connection a subscription runs on; undefined for HTTP requests. */
    readonly live?: LiveConnection,
    /** The request's W3C trace headers (`traceparent`, `tracestate`), the parent of its spans. */
    readonly traceHeaders?: TraceHeaders,
  ) {
    this.answerWritesJsonText = live === undefined;
  }

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

/** The W3C Trace Context headers of a request, as a router or client sent them. */
export interface TraceHeaders {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** The trace headers of a request's headers, for RequestContext (undefined when it has none). */
export function traceHeadersOf(headers: Record<string, string | string[] | undefined>): TraceHeaders | undefined {
  const { traceparent, tracestate } = headers;
  if (typeof traceparent !== "string") return undefined;
  return { traceparent, tracestate: typeof tracestate === "string" ? tracestate : undefined };
}
