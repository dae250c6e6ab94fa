import type { ApolloServerPlugin } from "@apollo/server";
import { defaultFieldResolver, type GraphQLSchema } from "graphql";
import type { Logger } from "pino";
import type { RequestContext } from "../context/request-context";
import { ErrorCode } from "../errors/error-code";
import type { Metrics } from "../metrics/metrics";

/** Options of OperationRecorder. */
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

/** Who an operation ran for, as the logs name it. */
interface OperationSubject {
  requestId: string;
  tenantId: string | undefined;
}

/** One finished operation, as `OperationRecorder.finished` takes it. */
export interface FinishedOperation {
  subject: OperationSubject;
  operationName: string | null | undefined;
  /** `query`, `mutation`, or undefined when the request never got as far as an operation. */
  operationType: string | undefined;
  failed: boolean;
  durationMs: number;
}

/**
 * Measures every operation into `graphql_operation_duration_seconds` (name, type, outcome), counts errors by code
 * into `graphql_errors_total`, logs each operation at debug and slow ones at warn, and logs store trouble. Both
 * paths to execution report here: Apollo's request pipeline (through `LatencyPlugin`) and the prepared-operation
 * lane (src/http/prepared-operation-lane.ts), so the metrics and logs do not depend on which one served a request.
 */
export class OperationRecorder {
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly slowMs: number;
  private readonly maxNames: number;
  private readonly names = new Set<string>();

  constructor(options: LatencyPluginOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.slowMs = options.slowOperationMs ?? 100;
    this.maxNames = options.maxOperationNames ?? 200;
  }

  /** Errors about to be sent to a client, before formatting (their `extensions.code` is what is counted). */
  errorsEncountered(errors: readonly unknown[], subject: OperationSubject): void {
    let storeTrouble = false;
    for (const error of errors) {
      const code = codeOf(error);
      this.metrics.errors.inc({ code });
      storeTrouble ||= code === ErrorCode.SERVICE_UNAVAILABLE;
    }
    if (storeTrouble) {
      this.logger.warn({ requestId: subject.requestId, tenantId: subject.tenantId }, "session store unavailable");
    }
  }

  /** The context could not be built (credentials refused): counted by its code. */
  contextFailed(error: unknown): void {
    this.metrics.errors.inc({ code: codeOf(error) });
  }

  finished(operation: FinishedOperation): void {
    const { subject, operationName, durationMs } = operation;
    const outcome = operation.failed ? "error" : "ok";
    this.metrics
      .operation(this.labelFor(operationName), operation.operationType ?? "unknown", outcome)
      .observe(durationMs / 1000);
    if (durationMs > this.slowMs) {
      this.logger.warn(
        { requestId: subject.requestId, tenantId: subject.tenantId, operationName, durationMs },
        "slow operation",
      );
    } else if (this.logger.isLevelEnabled("debug")) {
      this.logger.debug(
        { requestId: subject.requestId, tenantId: subject.tenantId, operationName, durationMs, outcome },
        "operation",
      );
    }
  }

  private labelFor(name: string | null | undefined): string {
    if (!name) return "anonymous";
    if (this.names.has(name)) return name;
    if (!PLAIN_NAME.test(name) || this.names.size >= this.maxNames) return "other";
    this.names.add(name);
    return name;
  }
}

/**
 * Reports Apollo's operations to the recorder. The root-field resolver timings come from `timeRootFields`, which
 * wraps only those resolvers: a `willResolveField` hook here would make Apollo wrap every field of every response.
 */
export function LatencyPlugin(recorder: OperationRecorder): ApolloServerPlugin<RequestContext> {
  return {
    async contextCreationDidFail({ error }) {
      recorder.contextFailed(error);
    },
    async requestDidStart() {
      const started = performance.now();
      return {
        async didEncounterErrors({ errors, contextValue }) {
          recorder.errorsEncountered(errors, contextValue);
        },
        async willSendResponse({ contextValue, operationName, operation, errors }) {
          recorder.finished({
            subject: contextValue,
            operationName,
            operationType: operation?.operation,
            failed: errors !== undefined && errors.length > 0,
            durationMs: performance.now() - started,
          });
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
