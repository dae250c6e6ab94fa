import { context as otelContext, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { defaultFieldResolver, type GraphQLSchema } from "graphql";
import type { RequestContext } from "../context/request-context";
import type { Metrics } from "../metrics/metrics";

/**
 * Wraps the resolvers of the root types' fields (Query, Mutation) so each call is recorded in
 * `graphql_resolver_duration_seconds`, whichever path runs the operation: they all run this schema. Nested fields
 * are untouched, so they cost nothing extra (an Apollo `willResolveField` hook would make Apollo wrap every field
 * of every response, and would not see the other paths).
 *
 * With a tracer (tracing on), each call is also a span `Query.<field>` / `Mutation.<field>` under the operation's
 * span, and the resolver runs with that span active, so the store calls it makes are its children. Without one,
 * nothing of tracing runs.
 */
export function timeRootFields(schema: GraphQLSchema, metrics: Metrics, tracer?: Tracer): void {
  for (const type of [schema.getQueryType(), schema.getMutationType()]) {
    if (!type) continue;
    for (const field of Object.values(type.getFields())) {
      const resolve = field.resolve ?? defaultFieldResolver;
      const histogram = metrics.resolverDuration.labels({ parent_type: type.name, field_name: field.name });
      const spanName = `${type.name}.${field.name}`;
      field.resolve = (source, args, context, info) => {
        const started = performance.now();
        const parent = tracer ? (context as RequestContext | undefined)?.trace : undefined;
        const span = parent
          ? tracer!.startSpan(spanName, { attributes: { "graphql.field.path": info.fieldName } }, parent)
          : undefined;
        const settle = (error?: unknown) => {
          histogram.observe((performance.now() - started) / 1000);
          if (span) {
            if (error !== undefined)
              span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message ?? error) });
            span.end();
          }
        };
        try {
          const result = span
            ? otelContext.with(trace.setSpan(parent!, span), () => resolve(source, args, context, info))
            : resolve(source, args, context, info);
          if (result instanceof Promise)
            return result.then(
              (value) => (settle(), value),
              (error: unknown) => {
                settle(error);
                throw error;
              },
            );
          settle();
          return result;
        } catch (error) {
          settle(error);
          throw error;
        }
      };
    }
  }
}
