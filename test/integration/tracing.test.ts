import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { MERGE } from "../helpers/api";
import { SESSION_CHANGED, subscribeWs, wsClient } from "../helpers/live";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant, gatewayHeaders } from "../helpers/test-server";

/**
 * OpenTelemetry tracing: a real server process exports over OTLP/HTTP to a receiver in this test, and the spans of
 * a request form one trace under the caller's `traceparent` — the operation, its root field, the store call —
 * on every path (Apollo's pipeline, the prepared lane, a subscription), with the tenant and never a value.
 */

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** A minimal OTLP/HTTP (JSON) trace receiver: keeps every span it is sent. */
async function startReceiver(): Promise<{ url: string; spans: OtlpSpan[]; server: Server; resources: unknown[] }> {
  const spans: OtlpSpan[] = [];
  const resources: unknown[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.url === "/v1/traces" && String(req.headers["content-type"]).startsWith("application/json")) {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans: { resource: unknown; scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const resourceSpans of body.resourceSpans) {
          resources.push(resourceSpans.resource);
          for (const scope of resourceSpans.scopeSpans) spans.push(...scope.spans);
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server, resources };
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value === undefined ? undefined : Object.values(value)[0];
};

describe("tracing over OTLP/HTTP", () => {
  let redis: RedisProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let server: ServerProcess;

  beforeAll(async () => {
    redis = await startRedis();
    receiver = await startReceiver();
    server = await startServerProcess({
      REDIS_URL: redis.url,
      AUTH_MODE: "gateway",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: "sessions-under-test",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await redis?.stop();
    await new Promise((resolve) => receiver.server.close(resolve));
    removeBuild();
  });

  /** A new W3C traceparent: its trace id, and the caller's span id the operation's span must hang under. */
  const traceparent = () => {
    const traceId = randomBytes(16).toString("hex");
    const spanId = randomBytes(8).toString("hex");
    return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
  };
  const spansOf = (traceId: string, count: number) =>
    pollUntil(
      `${count} spans of trace ${traceId}`,
      () => receiver.spans.filter((s) => s.traceId === traceId),
      (spans) => spans.length >= count,
      { timeoutMs: 15_000 },
    );

  const merge = async (tenant: string, trace: string) => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: trace, ...gatewayHeaders(tenant, "alice") },
      body: JSON.stringify({
        query: MERGE,
        operationName: "Merge",
        variables: { input: { sessionId: "a-secret-session", conversationState: { secret: "value-never-traced" } } },
      }),
    });
    expect(((await response.json()) as { errors?: unknown }).errors).toBeUndefined();
  };

  it("continues the caller's trace: operation, root field and store call, one under the other", async () => {
    const tenant = freshTenant();
    const { traceId, spanId, header } = traceparent();
    await merge(tenant, header);
    const spans = await spansOf(traceId, 3);
    const operation = spans.find((s) => s.name === "mutation Merge")!;
    const field = spans.find((s) => s.name === "Mutation.mergeSessionContext")!;
    const store = spans.find((s) => s.name === "session_store.merge")!;
    expect(operation.parentSpanId).toBe(spanId);
    expect(field.parentSpanId).toBe(operation.spanId);
    expect(store.parentSpanId).toBe(field.spanId);
    expect(attribute(operation, "graphql.operation.type")).toBe("mutation");
    expect(attribute(operation, "graphql.operation.name")).toBe("Merge");
    expect(attribute(operation, "session_context.tenant_id")).toBe(tenant);
    expect(attribute(store, "db.system.name")).toBe("redis");
    expect(attribute(store, "db.operation.name")).toBe("merge");
    expect(attribute(store, "session_context.tenant_id")).toBe(tenant);
    // Ids and values never become attributes.
    expect(JSON.stringify(spans)).not.toMatch(/a-secret-session|value-never-traced/);
    expect(JSON.stringify(receiver.resources)).toContain("sessions-under-test");
  });

  it("traces the prepared lane the same way", async () => {
    const tenant = freshTenant();
    await merge(tenant, traceparent().header); // Apollo prepares the operation
    const { traceId, spanId, header } = traceparent();
    await merge(tenant, header);
    const spans = await spansOf(traceId, 3);
    const operation = spans.find((s) => s.name === "mutation Merge")!;
    expect(attribute(operation, "graphql.execution.path")).toBe("prepared");
    expect(operation.parentSpanId).toBe(spanId);
    expect(spans.find((s) => s.name === "session_store.merge")?.parentSpanId).toBe(
      spans.find((s) => s.name === "Mutation.mergeSessionContext")?.spanId,
    );
  });

  it("traces a subscription's start under the upgrade request's traceparent", async () => {
    const { traceId, spanId, header } = traceparent();
    const client = wsClient(server.url, {
      headers: { ...gatewayHeaders(freshTenant(), "alice"), traceparent: header },
    });
    try {
      const received = subscribeWs(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
      const [operation] = await spansOf(traceId, 1);
      expect([operation.name, operation.parentSpanId]).toEqual(["subscription Changed", spanId]);
      expect(attribute(operation, "graphql.execution.path")).toBe("subscription");
      received.stop();
    } finally {
      await client.dispose();
    }
  });
});
