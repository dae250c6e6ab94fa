import { defaultFieldResolver, type GraphQLSchema } from "graphql";
import type { Metrics } from "../metrics/metrics";

/**
 * Wraps the resolvers of the root types' fields (Query, Mutation) so each call is recorded in
 * `graphql_resolver_duration_seconds`, whichever path runs the operation: they all run this schema. Nested fields
 * are untouched, so they cost nothing extra (an Apollo `willResolveField` hook would make Apollo wrap every field
 * of every response, and would not see the other paths).
 */
export function timeRootFields(schema: GraphQLSchema, metrics: Metrics): void {
  for (const type of [schema.getQueryType(), schema.getMutationType()]) {
    if (!type) continue;
    for (const field of Object.values(type.getFields())) {
      const resolve = field.resolve ?? defaultFieldResolver;
      const histogram = metrics.resolverDuration.labels({ parent_type: type.name, field_name: field.name });
      field.resolve = (source, args, context, info) => {
        const started = performance.now();
        const settle = () => histogram.observe((performance.now() - started) / 1000);
        try {
          const result = resolve(source, args, context, info);
          if (result instanceof Promise) return result.finally(settle);
          settle();
          return result;
        } catch (error) {
          settle();
          throw error;
        }
      };
    }
  }
}
