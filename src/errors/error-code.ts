/**
 * Every `extensions.code` this service sends. Clients switch on these; never rename one. The first six are raised
 * by our own code; the rest by Apollo Server (its ApolloServerErrorCode, same strings) or, for BAD_REQUEST, also
 * by our HTTP layer for a body it cannot read.
 */
export enum ErrorCode {
  BAD_USER_INPUT = "BAD_USER_INPUT",
  UNAUTHENTICATED = "UNAUTHENTICATED",
  FORBIDDEN = "FORBIDDEN",
  CONFLICT = "CONFLICT",
  SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE",
  INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR",
  /** The request itself could not be read: not JSON, too large, a GET without a query, a missing CSRF header. */
  BAD_REQUEST = "BAD_REQUEST",
  GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED",
  /** The document broke a GraphQL rule or a document limit (depth, aliases, cost). */
  GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED",
  /** The operation name given matches no operation of the document. */
  OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE",
  /** An automatic persisted query's hash the server does not know: the client sends the full query. */
  PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND",
  /** A connection asked for more live subscriptions than one connection may have open (100). */
  SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT",
}
