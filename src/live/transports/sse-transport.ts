import type { IncomingMessage, ServerResponse } from "node:http";
import { GraphQLError } from "graphql";
import { createHandler } from "graphql-sse";
import type { Caller } from "../../auth/caller";
import { traceHeadersOf, type RequestContext } from "../../context/request-context";
import { requestIdOf } from "../../http/request-id";
import type { LiveConnection } from "../live-updates";
import type { LiveOperationSink } from "../live-subscribe";
import {
  liveOperationContext,
  liveSubscribeOf,
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
  readonly res: ServerResponse;
  prepared?: PreparedSubscription;
  /** Resolves once the response's head is written: events are written after it. */
  readonly opened: Promise<void>;
  open(): void;
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
  // Where each operation's events go: straight to its response (live-subscribe.ts), after the head.
  const sinks = new WeakMap<RequestContext, LiveOperationSink>();
  const handler = createHandler<IncomingMessage, { res: ServerResponse }, Record<PropertyKey, unknown>>({
    schema,
    subscribe: liveSubscribeOf(options, sinks),
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
      sinks.set(context, nextEventSink(stream));
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

  /**
   * graphql-sse's own node adapter (graphql-sse/lib/use/http), but it says when the head is written: this
   * operation's events, which live-subscribe.ts writes to the response itself, must come after it.
   */
  async function respond(req: IncomingMessage, res: ServerResponse, stream: Stream): Promise<void> {
    const [body, init] = await handler({
      method: req.method ?? "POST",
      url: req.url ?? "/",
      headers: {
        get: (key) => {
          const header = req.headers[key];
          return Array.isArray(header) ? header.join("\n") : header;
        },
      },
      body: () =>
        new Promise<string>((resolve, reject) => {
          let text = "";
          req.on("data", (chunk) => (text += chunk));
          req.once("error", reject);
          req.once("end", () => resolve(text));
        }),
      raw: req,
      context: { res },
    });
    res.writeHead(init.status, init.statusText, init.headers);
    if (!body || typeof body === "string") {
      await new Promise<void>((resolve) => res.end(body, () => resolve()));
      return;
    }
    stream.open();
    const stop = () => void body.return(undefined);
    res.once("close", stop);
    // What graphql-sse itself sends on the stream: pings, the completion, a result it was handed directly.
    for await (const message of body) {
      if (res.destroyed || !res.writable) break;
      // A write that fails (the response was destroyed meanwhile: a slow consumer, a closed socket) ends the loop.
      const written = await new Promise<boolean>((resolve) => res.write(message, (error) => resolve(!error)));
      if (!written) break;
    }
    res.off("close", stop);
    if (res.destroyed) {
      void body.return(undefined);
      return;
    }
    await new Promise<void>((resolve) => res.end(() => resolve()));
  }

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
      let opened = () => undefined as void;
      const stream: Stream = {
        caller,
        live: { updates: options.updates, open: 0, closeSlowConsumer: () => res.destroy() },
        res,
        opened: new Promise<void>((resolve) => (opened = resolve)),
        open: () => opened(),
      };
      streams.set(req, stream);
      open.add(res);
      res.once("close", () => {
        open.delete(res);
        if (expiry) clearTimeout(expiry);
      });
      await respond(req, res, stream);
    },
    close() {
      for (const res of open) res.end();
    },
  };
}

const EVENT_HEAD = Buffer.from("event: next\ndata: ");
const EVENT_TAIL = Buffer.from("\n\n");

/**
 * Writes `next` events of one operation as graphql-sse would (distinct connections: the payload is the event's whole
 * data), after the response's head. Resolves once the response has taken the bytes (a client that does not read
 * holds back the next event, so its queue overflows and the response is ended, as over WebSocket).
 */
function nextEventSink(stream: Stream): LiveOperationSink {
  const { res } = stream;
  return {
    send: async (payload) => {
      await stream.opened;
      if (res.destroyed || !res.writable) return; // closed: the stream is being ended
      const event = Buffer.concat([EVENT_HEAD, payload, EVENT_TAIL], EVENT_HEAD.length + payload.length + 2);
      await new Promise<void>((resolve) => res.write(event, () => resolve()));
    },
  };
}
