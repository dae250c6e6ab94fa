import type { ApolloServerPlugin } from "@apollo/server";
import { defaultFieldResolver, type GraphQLSchema } from "graphql";
import type { Logger } from "pino";
import type { RequestContext } from "../context/request-context";
import { ErrorCode } from "../errors/error-code";
import type { Metrics } from "../metrics/metrics";

/** Options of LatencyPlugin. */
export interface LatencyPluginOptions {
  metrics: Metrics;
  logger: Logger;
  /** Operations slower than this (ms) are logged at `warn` as "slow operation". Default 100. */
  slowOperationMs?: number;
  /** Distinct operation names kept as label values; the rest count as "other". Default 200. */
  maxOperationNames?: number;
}

// Operation names come from clients: only plain GraphQL names become label values, and only so many of them.
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Measures every operation into `graphql_operation_duration_seconds` (name, type, outcome), counts errors by code
 * into `graphql_errors_total`, logs each operation at debug and slow ones at warn, and logs store trouble. The
 * root-field resolver timings come from `timeRootFields`, which wraps only those resolvers: a `willResolveField`
 * hook here would make Apollo wrap every field of every response.
 */
export function LatencyPlugin(options: LatencyPluginOptions): ApolloServerPlugin<RequestContext> {
  const { metrics, logger } = options;
  const slowMs = options.slowOperationMs ?? 100;
  const names = new Set<string>();
  const maxNames = options.maxOperationNames ?? 200;
  const labelFor = (name: string | null | undefined): string => {
    if (!name) return "anonymous";
    if (names.has(name)) return name;
    if (!PLAIN_NAME.test(name) || names.size >= maxNames) return "other";
    names.add(name);
    return name;
  };

  return {
    async contextCreationDidFail({ error }) {
      metrics.errors.inc({ code: codeOf(error) });
    },
    async requestDidStart() {
      const started = performance.now();
      return {
        async didEncounterErrors({ errors, contextValue }) {
          let storeTrouble = false;
          for (const error of errors) {
            const code = codeOf(error);
            metrics.errors.inc({ code });
            storeTrouble ||= code === ErrorCode.SERVICE_UNAVAILABLE;
          }
          if (storeTrouble) {
            logger.warn(
              { requestId: contextValue.requestId, tenantId: contextValue.tenantId },
              "session store unavailable",
            );
          }
        },
        async willSendResponse({ contextValue, operationName, operation, errors }) {
          const durationMs = performance.now() - started;
          const outcome = errors && errors.length > 0 ? "error" : "ok";
          metrics.operationDuration.observe(
            { operation_name: labelFor(operationName), operation_type: operation?.operation ?? "unknown", outcome },
            durationMs / 1000,
          );
          if (durationMs > slowMs) {
            logger.warn(
              { requestId: contextValue.requestId, tenantId: contextValue.tenantId, operationName, durationMs },
              "slow operation",
            );
          } else if (logger.isLevelEnabled("debug")) {
            logger.debug(
              {
                requestId: contextValue.requestId,
                tenantId: contextValue.tenantId,
                operationName,
                durationMs,
                outcome,
              },
              "operation",
            );
          }
        },
      };
    },
  };
}

function codeOf(error: unknown): string {
  const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
  return typeof code === "string" ? code : ErrorCode.INTERNAL_SERVER_ERROR;
}

/**
 * Wraps the resolvers of the root types' fields (Query, Mutation) so each call is recorded in
 * `graphql_resolver_duration_seconds`. Nested fields are untouched, so they cost nothing extra.
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
