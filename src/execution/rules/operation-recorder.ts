import type { Logger } from "pino";
import { ErrorCode } from "../../errors/error-code";
import type { Metrics } from "../../metrics/metrics";
import type { OperationEnd, OperationRule, OperationStart } from "../operation-rule";

/** Options of OperationRecorder. */
export interface OperationRecorderOptions {
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
 * into `graphql_errors_total` (refused credentials too), logs each operation at debug and slow ones at warn, and
 * logs store trouble. A rule of the ExecutionSeam, so the metrics and logs do not depend on which path served a
 * request.
 */
export class OperationRecorder implements OperationRule {
  readonly name = "operation-recorder";
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly slowMs: number;
  private readonly maxNames: number;
  private readonly names = new Set<string>();

  constructor(options: OperationRecorderOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.slowMs = options.slowOperationMs ?? 100;
    this.maxNames = options.maxOperationNames ?? 200;
  }

  observe({ context }: OperationStart): (end: OperationEnd) => void {
    return (end) => {
      if (end.errors.length > 0) this.errorsSent(end.errors, context.requestId, context.tenantId);
      this.finished(end, context.requestId, context.tenantId);
    };
  }

  contextFailed(error: unknown): void {
    this.metrics.errors.inc({ code: codeOf(error) });
  }

  private errorsSent(errors: readonly unknown[], requestId: string, tenantId: string | undefined): void {
    let storeTrouble = false;
    for (const error of errors) {
      const code = codeOf(error);
      this.metrics.errors.inc({ code });
      storeTrouble ||= code === ErrorCode.SERVICE_UNAVAILABLE;
    }
    if (storeTrouble) this.logger.warn({ requestId, tenantId }, "session store unavailable");
  }

  private finished(end: OperationEnd, requestId: string, tenantId: string | undefined): void {
    const { operationName, durationMs } = end;
    const outcome = end.errors.length > 0 ? "error" : "ok";
    this.metrics
      .operation(this.labelFor(operationName), end.operationType ?? "unknown", outcome)
      .observe(durationMs / 1000);
    if (durationMs > this.slowMs) {
      this.logger.warn({ requestId, tenantId, operationName, durationMs }, "slow operation");
    } else if (this.logger.isLevelEnabled("debug")) {
      this.logger.debug({ requestId, tenantId, operationName, durationMs, outcome }, "operation");
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

function codeOf(error: unknown): string {
  const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
  return typeof code === "string" ? code : ErrorCode.INTERNAL_SERVER_ERROR;
}
