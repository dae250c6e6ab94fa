import { context, propagation, trace, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import type { Config } from "../config";

/** The process's tracer, and how to flush and stop it (on shutdown). */
export interface Tracing {
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry tracing when the configuration asks for it (an OTLP endpoint, not disabled): spans are
 * batched and exported over OTLP/HTTP (JSON) to the endpoint; W3C `traceparent` / `tracestate` are read from
 * requests; the async context follows a request through awaits (AsyncLocalStorage), so a store call's span is the
 * child of the root field that made it. Undefined when not configured: no SDK, no context manager, no cost.
 *
 * The exporter reads the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
 * `…_COMPRESSION`), and the resource takes `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
 */
export function startTracing(options: Config["tracing"]): Tracing | undefined {
  if (options === undefined) return undefined;
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": "session-context-service" }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new TracerProvider({
    resource,
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: options.tracesUrl }),
        scheduledDelayMillis: options.scheduleDelayMs,
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    tracer: provider.getTracer("session-context-service"),
    shutdown: () => provider.shutdown(),
  };
}
