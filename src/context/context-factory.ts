import type { IncomingMessage } from "node:http";
import type { Tracer } from "@opentelemetry/api";
import { Kind, parse, type OperationDefinitionNode } from "graphql";
import type { Authenticator } from "../auth/authenticator";
import { UnauthenticatedError } from "../errors/errors";
import type { Metrics } from "../metrics/metrics";
import type { SessionStore } from "../sessions/session-store";
import { TimedSessionStore } from "../store/timed-session-store";
import { RequestContext, traceHeadersOf } from "./request-context";

/** What the HTTP layer hands the factory for one request. */
export interface ContextInput {
  req: IncomingMessage;
  /** The id the HTTP layer gave the request, also sent back as `x-request-id`. */
  requestId: string;
  /** The GraphQL request as sent: the POST body, or the GET query parameters. */
  graphqlRequest: { query?: unknown; operationName?: unknown };
}

export interface ContextFactoryDeps {
  authenticator: Authenticator;
  store: SessionStore;
  metrics: Metrics;
  /** Traces each store call when tracing is on. */
  tracer?: Tracer;
}

/**
 * Builds the GraphQL context: identity is established here, before any resolver runs. Missing or invalid
 * credentials fail the whole request with UNAUTHENTICATED (HTTP 401); the one exception is an operation that
 * asks only for `_service` (the published SDL), which a federation router fetches without an identity.
 */
export function createContextFactory(deps: ContextFactoryDeps) {
  return async ({ req, requestId, graphqlRequest }: ContextInput): Promise<RequestContext> => {
    const store = new TimedSessionStore(deps.store, deps.metrics, deps.tracer);
    try {
      const caller = await deps.authenticator.authenticate(req.headers);
      return new RequestContext(requestId, caller, store, undefined, traceHeadersOf(req.headers));
    } catch (error) {
      if (error instanceof UnauthenticatedError && asksOnlyForServiceSdl(graphqlRequest)) {
        return new RequestContext(requestId, undefined, store, undefined, traceHeadersOf(req.headers));
      }
      throw error;
    }
  };
}

function asksOnlyForServiceSdl({ query, operationName }: ContextInput["graphqlRequest"]): boolean {
  if (typeof query !== "string") return false;
  let operations: OperationDefinitionNode[];
  try {
    operations = parse(query).definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  } catch {
    return false;
  }
  const operation =
    typeof operationName === "string" && operationName.length > 0
      ? operations.find((o) => o.name?.value === operationName)
      : operations.length === 1
        ? operations[0]
        : undefined;
  return (
    operation !== undefined &&
    operation.operation === "query" &&
    operation.selectionSet.selections.every(
      (s) => s.kind === Kind.FIELD && (s.name.value === "_service" || s.name.value === "__typename"),
    ) &&
    operation.selectionSet.selections.some((s) => s.kind === Kind.FIELD && s.name.value === "_service")
  );
}
