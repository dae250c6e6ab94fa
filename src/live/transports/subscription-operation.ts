import {
  getOperationAST,
  GraphQLError,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
  type OperationTypeNode,
} from "graphql";
import type { Tracer } from "@opentelemetry/api";
import { LRUCache } from "lru-cache";
import type { Authenticator } from "../../auth/authenticator";
import type { Caller } from "../../auth/caller";
import { RequestContext, type TraceHeaders } from "../../context/request-context";
import type { Metrics } from "../../metrics/metrics";
import type { SessionStore } from "../../sessions/session-store";
import { TimedSessionStore } from "../../store/timed-session-store";
import type { LiveConnection, LiveUpdates } from "../live-updates";
import { liveSubscribe, type LiveOperationSink } from "../live-subscribe";
import type { SharingPlans } from "../sharing-plan";
import { ErrorCode } from "../../errors/error-code";
import type { ExecutionSeam } from "../../execution/execution-seam";

/** What both live transports run operations with. */
export interface LiveTransportDeps {
  schema: GraphQLSchema;
  /** The rules every path applies: validation limits, admission, observation, error formatting. */
  seam: ExecutionSeam;
  /** The same as for HTTP requests. */
  authenticator: Authenticator;
  store: SessionStore;
  metrics: Metrics;
  updates: LiveUpdates;
  /** Traces each store call when tracing is on. */
  tracer?: Tracer;
  /** Parsed and validated documents, shared by every subscription that sends the same text. */
  documents: SubscriptionDocuments;
  /** Which subscriptions may share the execution of an event (sharing-plan.ts). */
  plans: SharingPlans;
}

/**
 * The `subscribe` a transport gives its library (live-subscribe.ts): `sinks` holds, by operation context, where
 * that operation's `next` messages go; errors leave through the seam's formatter as on every path.
 */
export function liveSubscribeOf(
  deps: LiveTransportDeps,
  sinks: WeakMap<RequestContext, LiveOperationSink>,
): ReturnType<typeof liveSubscribe> {
  return liveSubscribe({
    updates: deps.updates,
    plans: deps.plans,
    executions: deps.metrics.eventExecutions,
    sinkOf: (contextValue) => sinks.get(contextValue as RequestContext),
    formatErrors: (errors) => deps.seam.formatErrors([...errors]).errors,
  });
}

/** The context of one operation on a live connection: as an HTTP request's, plus the connection. */
export function liveOperationContext(
  deps: LiveTransportDeps,
  requestId: string,
  caller: Caller,
  live: LiveConnection,
  traceHeaders: TraceHeaders | undefined,
): RequestContext {
  return new RequestContext(
    requestId,
    caller,
    new TimedSessionStore(deps.store, deps.metrics, deps.tracer),
    live,
    traceHeaders,
  );
}

/** An operation as a graphql-ws or graphql-sse client sends it. */
export interface OperationPayload {
  readonly query?: unknown;
  readonly operationName?: unknown;
  readonly variables?: unknown;
}

/** An operation ready to run, under observation until `started` reports how its start went. */
export interface PreparedSubscription {
  readonly args: ExecutionArgs;
  /** Ends the observation: the stream is open (no errors) or was refused (its errors). */
  started(errors: readonly GraphQLError[]): void;
}

/**
 * The first half of the subscription path, for both transports: parse, validate (graphql-js's rules and the
 * seam's document limits), resolve the operation, admit it through the seam's rules and start observing it —
 * the same rules, in the same words, as an HTTP request gets from Apollo. Returns the errors instead when any step
 * refuses; nothing has run then.
 */
/** A document text, parsed and validated once: the document, or what parsing or validating it refused. */
type CheckedDocument = { readonly document: DocumentNode } | { readonly errors: readonly GraphQLError[] };

/**
 * Documents by their text, parsed and validated once. Subscribers send the same few documents over and over (every
 * reconnect, every window of an app), and a subscription holds its document for its whole life: sharing one parsed
 * copy saves its parse and validation and ~10 KB per open subscription (measured: 30.6 KB per idle subscriber
 * before, 20.5 KB with a one-field document). Bounded, least recently used first out.
 */
export class SubscriptionDocuments {
  private readonly checked = new LRUCache<string, CheckedDocument>({ max: 500 });

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly seam: ExecutionSeam,
  ) {}

  check(query: string): CheckedDocument {
    let checked = this.checked.get(query);
    if (checked === undefined) {
      checked = this.parseAndValidate(query);
      // A document too large to be a real subscription is not kept (document limits refuse those anyway).
      if (query.length <= 16_384) this.checked.set(query, checked);
    }
    return checked;
  }

  private parseAndValidate(query: string): CheckedDocument {
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch (error) {
      const syntax = error instanceof GraphQLError ? error : new GraphQLError(String(error));
      return { errors: [withCode(syntax, ErrorCode.GRAPHQL_PARSE_FAILED)] };
    }
    const invalid = validate(this.schema, document, [...specifiedRules, ...this.seam.validationRules]);
    if (invalid.length > 0)
      return { errors: invalid.map((error) => withCode(error, ErrorCode.GRAPHQL_VALIDATION_FAILED)) };
    return { document };
  }
}

export function prepareSubscription(
  seam: ExecutionSeam,
  documents: SubscriptionDocuments,
  schema: GraphQLSchema,
  payload: OperationPayload,
  context: RequestContext,
): PreparedSubscription | readonly GraphQLError[] {
  const { query, operationName, variables } = payload;
  if (typeof query !== "string") return [requestError("the operation has no query string")];
  if (operationName !== undefined && operationName !== null && typeof operationName !== "string")
    return [requestError("operationName must be a string")];
  if (variables !== undefined && variables !== null && (typeof variables !== "object" || Array.isArray(variables)))
    return [requestError("variables must be an object")];
  const observed = seam.start({ path: "subscription", context, operationName });
  const refuse = (errors: readonly GraphQLError[], operationType?: OperationTypeNode) => {
    observed.end({ operationName: operationName ?? null, operationType, errors });
    return errors;
  };

  const checked = documents.check(query);
  if ("errors" in checked) return refuse(checked.errors);
  const { document } = checked;
  const operation = getOperationAST(document, operationName ?? undefined);
  if (operation === null || operation === undefined) {
    return refuse([
      new GraphQLError(
        operationName
          ? `Unknown operation named "${operationName}".`
          : "Must provide operation name if query contains multiple operations.",
        { extensions: { code: ErrorCode.OPERATION_RESOLUTION_FAILURE } },
      ),
    ]);
  }
  const variableValues = (variables ?? {}) as Record<string, unknown>;
  try {
    seam.admit({ document, operation, variables: variableValues, context });
  } catch (error) {
    if (error instanceof GraphQLError) return refuse([error], operation.operation);
    throw error;
  }
  return {
    args: { schema, document, operationName: operationName ?? undefined, variableValues, contextValue: context },
    started: (errors) =>
      observed.end({
        operationName: operation.name?.value ?? operationName ?? null,
        operationType: operation.operation,
        errors,
      }),
  };
}

function requestError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.BAD_REQUEST } });
}

function withCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}
