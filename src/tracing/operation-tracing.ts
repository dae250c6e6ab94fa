import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import type { GraphQLError } from "graphql";
import type { OperationEnd, OperationRule, OperationStart } from "../execution/operation-rule";

/**
 * A span per operation, on every path (Apollo's pipeline, the prepared lane, subscriptions), as a rule of the
 * execution seam: the child of the caller's W3C `traceparent` when it sent one (a router's), named
 * `<type> <name>` as OpenTelemetry's GraphQL conventions say, with the tenant and request id. Its trace context goes
 * into the request's context, where root fields and store calls find their parent (timeRootFields,
 * TimedSessionStore). For a subscription the span covers its start, not its life.
 */
export class OperationTracing implements OperationRule {
  readonly name = "operation-tracing";

  constructor(private readonly tracer: Tracer) {}

  observe({ context, operationName, path }: OperationStart): (end: OperationEnd) => void {
    const parent = context.traceHeaders ? propagation.extract(ROOT_CONTEXT, context.traceHeaders) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(
      "graphql.operation",
      {
        kind: SpanKind.SERVER,
        attributes: {
          "graphql.execution.path": path,
          "session_context.request_id": context.requestId,
          ...(context.tenantId === undefined ? {} : { "session_context.tenant_id": context.tenantId }),
        },
      },
      parent,
    );
    context.trace = trace.setSpan(parent, span);
    return (end) => {
      const type = end.operationType ?? "unknown";
      const name = end.operationName ?? operationName ?? undefined;
      span.updateName(name ? `${type} ${name}` : type);
      span.setAttribute("graphql.operation.type", type);
      if (name) span.setAttribute("graphql.operation.name", name);
      if (end.errors.length > 0) {
        span.setAttribute("graphql.error.codes", end.errors.map(codeOf));
        span.setStatus({ code: SpanStatusCode.ERROR, message: end.errors[0].message });
      }
      span.end();
    };
  }
}

function codeOf(error: GraphQLError): string {
  const code = (error.extensions as GraphQLError["extensions"] | undefined)?.code;
  return typeof code === "string" ? code : "INTERNAL_SERVER_ERROR";
}
