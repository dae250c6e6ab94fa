import type { IncomingMessage, ServerResponse } from "node:http";
import { GraphQLError } from "graphql";
import { createHandler } from "graphql-sse/lib/use/http";
import type { Caller } from "../../auth/caller";
import { traceHeadersOf } from "../../context/request-context";
import { requestIdOf } from "../../http/request-id";
import type { LiveConnection } from "../live-updates";
import {
  liveOperationContext,
  prepareSubscription,
  type LiveTransportDeps,
  type PreparedSubscription,
} from "./subscription-operation";

/** Options of createSseTransport: what every live transport needs. */
export type SseTransportOptions = LiveTransportDeps;

/** What one SSE request holds while its operation runs. */
interface Stream {
  readonly caller: Caller;
  readonly live: LiveConnection;
  prepared?: PreparedSubscription;
}

/**
 * GraphQL over Server-Sent Events (the graphql-sse library's protocol, "distinct connections" mode: one POST per
 * operation, answered with an event stream) on `/graphql/stream`, for clients that cannot open a WebSocket.
 * Credentials come from the request's headers as for any HTTP request; refused ones get HTTP 401 before anything
 * runs. The same seam as every other path; a client that does not read its stream has its response ended.
 * `close()` completes every open stream.
 */
export function createSseTransport(options: SseTransportOptions): {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  close(): void;
} {
  const { seam, schema } = options;
  const streams = new WeakMap<IncomingMessage, Stream>();
  const open = new Set<ServerResponse>();
  // graphql-sse types the operation context as a plain record; ours is a RequestContext.
  const handler = createHandler<Record<PropertyKey, unknown>>({
    schema,
    onSubscribe: (req, params) => {
      const stream = streams.get(req.raw) as Stream;
      const context = liveOperationContext(
        options,
        requestIdOf(req.raw),
        stream.caller,
        stream.live,
        traceHeadersOf(req.raw.headers),
      );
      const prepared = prepareSubscription(seam, options.documents, schema, params, context);
      if (!("args" in prepared)) return { errors: formatted(prepared) };
      stream.prepared = prepared;
      return { ...prepared.args, contextValue: context as unknown as Record<PropertyKey, unknown> };
    },
    onOperation: (_ctx, req, _args, result) => {
      // Observed from the request until the stream is open (or refused), not for its whole life.
      streams.get(req.raw)?.prepared?.started("errors" in result && result.errors ? result.errors : []);
    },
    onNext: (_ctx, _req, result) => {
      if (!result.errors?.length) return result;
      return { ...result, errors: formatted(result.errors) };
    },
  });
  // graphql-sse sends the errors it is given as they are: give it them formatted by the seam.
  const formatted = (errors: readonly GraphQLError[]) =>
    seam.formatErrors([...errors]).errors as unknown as GraphQLError[];

  return {
    async handle(req, res) {
      if (req.method === "PUT" || (req.method === "GET" && req.headers["x-graphql-event-stream-token"])) {
        // Single-connection mode (a reserved stream shared by operations) is not offered: one stream per operation.
        res.writeHead(405, { "content-type": "application/json", allow: "POST, GET" });
        res.end(
          JSON.stringify({ errors: [{ message: "use graphql-sse in distinct connections mode (its default)" }] }),
        );
        return;
      }
      let caller: Caller;
      try {
        caller = await options.authenticator.authenticate(req.headers);
      } catch (error) {
        seam.contextFailed(error);
        const formatted = seam.formatErrors([error instanceof GraphQLError ? error : new GraphQLError(String(error))]);
        res.writeHead(formatted.status ?? 401, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ errors: formatted.errors }));
        return;
      }
      const expiry =
        caller.expiresAt === undefined
          ? undefined
          : setTimeout(() => res.destroy(), Math.max(0, caller.expiresAt - Date.now()));
      streams.set(req, {
        caller,
        live: { updates: options.updates, open: 0, closeSlowConsumer: () => res.destroy() },
      });
      open.add(res);
      res.once("close", () => {
        open.delete(res);
        if (expiry) clearTimeout(expiry);
      });
      await handler(req, res);
    },
    close() {
      for (const res of open) res.end();
    },
  };
}
