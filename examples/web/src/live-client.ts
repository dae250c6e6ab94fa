import { ApolloClient, ApolloLink, HttpLink, type InMemoryCache } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import { createSessionCache } from "../../apollo-client/session-cache";
import type { Identity } from "./identity";
import { SESSION, SESSION_FIELDS, type Session } from "./operations";

/** The WebSocket's state, for the badge in the page's header. */
export type ConnectionState =
  | { readonly kind: "connecting" }
  | { readonly kind: "live" }
  | { readonly kind: "reconnecting"; readonly code: number; readonly reason: string }
  /** 4401: the token was refused or has expired; graphql-ws does not retry it. */
  | { readonly kind: "signed-out"; readonly reason: string };

export interface LiveClient {
  readonly apollo: ApolloClient;
  readonly connection: {
    readonly get: () => ConnectionState;
    readonly subscribe: (listener: () => void) => () => void;
  };
  /** Closes the WebSocket and stops the client (on sign-out). */
  readonly dispose: () => void;
}

/**
 * Apollo Client over the service: subscriptions on a WebSocket (graphql-ws, the `graphql-transport-ws` protocol),
 * queries and mutations over HTTP, as the README's "Subscribing from Apollo Client" sets it up. `endpoint` is the
 * HTTP URL of `/graphql`; the WebSocket URL is the same with `ws:`/`wss:`.
 */
export function createLiveClient(endpoint: string, identity: Identity): LiveClient {
  const http = new URL(endpoint, location.href);
  const ws = new URL(http);
  ws.protocol = http.protocol === "https:" ? "wss:" : "ws:";

  let state: ConnectionState = { kind: "connecting" };
  const listeners = new Set<() => void>();
  const set = (next: ConnectionState) => {
    state = next;
    for (const listener of listeners) listener();
  };

  const wsClient = createClient({
    url: ws.href,
    // Browsers cannot set headers on a WebSocket: the token goes in the connection_init payload.
    connectionParams: () => ({ Authorization: `Bearer ${identity.token}` }),
    // Keep trying while the page is open (a server restart or a 1001 on deploy is routine), at most 10 s apart.
    retryAttempts: Infinity,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** retries))),
    shouldRetry: () => true,
    on: {
      connected: () => set({ kind: "live" }),
      closed: (event) => {
        const { code, reason } = event as CloseEvent;
        set(code === 4401 ? { kind: "signed-out", reason } : { kind: "reconnecting", code, reason });
      },
    },
  });

  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(wsClient),
    new HttpLink({ uri: http.href, headers: { authorization: `Bearer ${identity.token}` } }),
  );

  const apollo = new ApolloClient({ link, cache: createSessionCache(identity.userId) });
  return {
    apollo,
    dispose: () => {
      apollo.stop();
      void wsClient.dispose();
    },
    connection: {
      get: () => state,
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  };
}

/**
 * Puts `session` into the cache unless the cache already holds a newer state of it. Events replayed after a
 * reconnect, and a write's answer that arrives after another window's newer write, carry older states: Apollo
 * would write them over the newer one, so the page hands events and answers to this instead of letting Apollo
 * cache them (they are fetched with `fetchPolicy: "no-cache"`). A session deleted and created again starts again
 * at version 1, with another `storedAt`: a state with another `storedAt` always replaces the cached one.
 */
export function writeIfNewer(cache: InMemoryCache, session: Session): void {
  const id = cache.identify({ __typename: "SessionContext", userId: session.userId, sessionId: session.sessionId });
  const cached = cache.readFragment({ id, fragment: SESSION_FIELDS });
  if (cached && cached.storedAt === session.storedAt && cached.version >= session.version) return;
  cache.writeFragment({ id, fragment: SESSION_FIELDS, data: { ...session, __typename: "SessionContext" } });
}

/** A DELETED event: the session is gone, and the query that shows it says so (null). */
export function writeDeleted(cache: InMemoryCache, sessionId: string, userId: string): void {
  cache.evict({ id: cache.identify({ __typename: "SessionContext", userId, sessionId }) });
  cache.gc();
  cache.writeQuery({ query: SESSION, variables: { sessionId }, data: { sessionContext: null } });
}
