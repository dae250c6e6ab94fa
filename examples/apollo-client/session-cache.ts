import { InMemoryCache } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";

/**
 * An Apollo Client cache for the Session Context Service. `currentUserId` is the signed-in user: the API acts for
 * the caller when an operation names no `userId`, and the cache has to know whom that means.
 *
 * - `SessionContext` is keyed like its federation key, `userId sessionId` (select both in every operation), so the
 *   cache can name a session from a query's arguments before it has ever seen it.
 * - `Query.sessionContext` reads that session from the cache whenever it is there: a query that answered `null` (no
 *   such session yet) shows the session as soon as a write in this client creates it, without a refetch. Until then
 *   it keeps the `null` it was answered.
 * - `Query.userSessions` pages with `relayStylePagination`: `fetchMore({ variables: { after: endCursor } })` appends
 *   the next page to the list the query shows; one list per `userId`.
 */
export function createSessionCache(currentUserId: string): InMemoryCache {
  return new InMemoryCache({
    typePolicies: {
      SessionContext: { keyFields: ["userId", "sessionId"] },
      Query: {
        fields: {
          sessionContext: {
            read(existing, { args, toReference, canRead }) {
              const session = toReference({
                __typename: "SessionContext",
                userId: args?.userId ?? currentUserId,
                sessionId: args?.sessionId,
              });
              return canRead(session) ? session : existing;
            },
          },
          userSessions: relayStylePagination(["userId"]),
        },
      },
    },
  });
}
