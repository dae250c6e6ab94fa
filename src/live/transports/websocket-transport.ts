import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { GraphQLError } from "graphql";
import { CloseCode, handleProtocols, makeServer } from "graphql-ws";
import type { Logger } from "pino";
import { WebSocketServer, type WebSocket } from "ws";
import type { Caller } from "../../auth/caller";
import { traceHeadersOf, type RequestContext, type TraceHeaders } from "../../context/request-context";
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

/** Close codes this transport uses besides graphql-ws's own. */
export const LiveCloseCode = {
  /** Refused or expired credentials (graphql-ws's Unauthorized). */
  Unauthorized: CloseCode.Unauthorized,
  /** The client did not read what it was sent; it may reconnect and resume with `afterVersion`. */
  SlowConsumer: 1013,
  /** The server is shutting down. */
  GoingAway: 1001,
} as const;

export interface WebSocketTransportOptions extends LiveTransportDeps {
  httpServer: Server;
  path: string;
  logger: Logger;
  /** Ping interval; a peer that does not answer a ping within it is dropped. graphql-ws's default is 12 s. */
  keepAliveMs?: number;
}

/** What one socket holds once its connection_init was accepted. */
interface Connection {
  readonly requestId: string;
  readonly caller: Caller;
  readonly live: LiveConnection;
  readonly operations: Map<string, PreparedSubscription>;
  /** The upgrade request's trace headers: the parent of each operation's span. */
  readonly traceHeaders: TraceHeaders | undefined;
  expiry?: NodeJS.Timeout;
}

type SocketExtra = { socket: WebSocket; request: IncomingMessage; connection?: Connection };

/**
 * GraphQL over WebSocket (the graphql-transport-ws protocol, the graphql-ws library) on the HTTP server's `/graphql`.
 *
 * Credentials: `Authorization` in the connection_init payload, else the upgrade request's headers (a JWT, or the
 * gateway headers with x-gateway-secret) — checked by the same authenticator as HTTP requests. Refused: the socket
 * closes with 4401. A JWT's `exp` ends the connection (4401) when it passes. Every subscribe message goes through the
 * seam (subscription-operation.ts); errors leave through the seam's formatter. A client that does not read its
 * events is closed with 1013 (LiveUpdates' bounded queues tell); `close()` ends every socket with 1001.
 */
export function attachWebSocketTransport(options: WebSocketTransportOptions): { close(): Promise<void> } {
  const { seam, schema, logger } = options;
  const keepAliveMs = options.keepAliveMs ?? 12_000;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    // Only graphql-transport-ws: a client speaking anything else is refused at the handshake.
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((request.url ?? "/").split("?")[0] !== options.path) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request));
  };
  options.httpServer.on("upgrade", onUpgrade);

  // Where each operation's events go: straight to its socket, as the frames graphql-ws would make (live-subscribe.ts).
  const sinks = new WeakMap<RequestContext, LiveOperationSink>();
  const server = makeServer<Record<string, unknown> | undefined, SocketExtra>({
    schema,
    subscribe: liveSubscribeOf(options, sinks),
    onConnect: async (ctx) => {
      const { socket, request } = ctx.extra;
      const headers = { ...request.headers };
      const fromPayload = ctx.connectionParams?.Authorization ?? ctx.connectionParams?.authorization;
      if (typeof fromPayload === "string") headers.authorization = fromPayload;
      let caller: Caller;
      try {
        caller = await options.authenticator.authenticate(headers);
      } catch (error) {
        seam.contextFailed(error);
        socket.close(LiveCloseCode.Unauthorized, closeReason(`Unauthorized: ${(error as Error).message}`));
        return false;
      }
      const connection: Connection = {
        requestId: requestIdOf(request),
        caller,
        traceHeaders: traceHeadersOf(request.headers),
        operations: new Map(),
        live: {
          updates: options.updates,
          open: 0,
          closeSlowConsumer: () =>
            socket.close(LiveCloseCode.SlowConsumer, "slow consumer: events were not read; resume with afterVersion"),
        },
      };
      if (caller.expiresAt !== undefined) {
        connection.expiry = setTimeout(
          () => socket.close(LiveCloseCode.Unauthorized, "Unauthorized: token expired"),
          Math.max(0, caller.expiresAt - Date.now()),
        );
      }
      ctx.extra.connection = connection;
      return true;
    },
    onSubscribe: (ctx, id, payload) => {
      const connection = ctx.extra.connection as Connection;
      const context = liveOperationContext(
        options,
        connection.requestId,
        connection.caller,
        connection.live,
        connection.traceHeaders,
      );
      const prepared = prepareSubscription(seam, options.documents, schema, payload, context);
      if (!("args" in prepared)) return prepared; // onError formats them
      connection.operations.set(id, prepared);
      sinks.set(context, nextMessageSink(ctx.extra.socket, id));
      return prepared.args;
    },
    onOperation: (ctx, id, _payload, _args, result) => {
      // Observed from the subscribe message until the stream is open (or refused), not for its whole life.
      const connection = ctx.extra.connection as Connection;
      const prepared = connection.operations.get(id);
      connection.operations.delete(id);
      prepared?.started("errors" in result && result.errors ? result.errors : []);
    },
    onNext: (_ctx, _id, _payload, _args, result) => {
      if (!result.errors?.length) return result;
      return { ...result, errors: seam.formatErrors(result.errors as GraphQLError[]).errors };
    },
    // graphql-ws wraps an error thrown while iterating in a new GraphQLError; the original carries the code.
    onError: (_ctx, _id, _payload, errors) =>
      seam.formatErrors(errors.map((e) => (e.originalError instanceof GraphQLError ? e.originalError : e))).errors,
    onClose: (ctx) => {
      const connection = ctx.extra.connection;
      if (connection?.expiry) clearTimeout(connection.expiry);
    },
  });

  wss.on("connection", (socket: WebSocket, request: IncomingMessage) => {
    const closed = server.opened(
      {
        protocol: socket.protocol,
        // Resolves when the frame is handed to the socket: graphql-ws waits for it before the next event, so a
        // client that does not read holds its events in LiveUpdates' bounded queue, not in this process's buffers.
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (error) => (error ? reject(error) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on("message", (data) => {
            handle(String(data)).catch((error: unknown) => {
              logger.error({ err: error }, "graphql-ws message failed");
              socket.close(CloseCode.InternalServerError, "Internal server error");
            });
          }),
      },
      { socket, request },
    );
    // Keep-alive: a ping every keepAliveMs keeps proxies from closing an idle socket; no pong by the next one
    // means the peer is gone, and the socket is dropped (its subscriptions end with it).
    let alive = true;
    socket.on("pong", () => (alive = true));
    const keepAlive = setInterval(() => {
      if (!alive) return socket.terminate();
      alive = false;
      socket.ping();
    }, keepAliveMs);
    socket.once("close", (code, reason) => {
      clearInterval(keepAlive);
      void closed(code, String(reason));
    });
    socket.on("error", (error) => logger.debug({ err: error.message }, "websocket error"));
  });
  logger.debug({ path: options.path }, "graphql-ws transport attached");

  return {
    close: async () => {
      options.httpServer.off("upgrade", onUpgrade);
      // 1001 after what is already queued on each socket (ws sends the close frame behind it).
      for (const socket of wss.clients) socket.close(LiveCloseCode.GoingAway, "server shutting down");
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * Sends `next` messages of one operation as graphql-ws would: `{"id":<id>,"type":"next","payload":<payload>}` in a text
 * frame. The payload's bytes may be shared with other subscribers; only the id around them is this operation's.
 */
function nextMessageSink(socket: WebSocket, id: string): LiveOperationSink {
  const head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
  return {
    send: (payload) =>
      new Promise<void>((resolve, reject) => {
        if (socket.readyState !== socket.OPEN) return resolve();
        const message = Buffer.allocUnsafe(head.length + payload.length + 1);
        head.copy(message, 0);
        payload.copy(message, head.length);
        message[message.length - 1] = 0x7d; // }
        socket.send(message, { binary: false }, (error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** WebSocket close reasons are at most 123 bytes. */
function closeReason(reason: string): string {
  const bytes = Buffer.from(reason);
  return bytes.length <= 123
    ? reason
    : bytes
        .subarray(0, 120)
        .toString("utf8")
        .replace(/\uFFFD*$/, "") + "...";
}
