import { createServer as createHttpServer, type Server } from "node:http";
import type { Tracer } from "@opentelemetry/api";
import type { AddressInfo } from "node:net";
import { ApolloServer } from "@apollo/server";
import { writeJsonAnswerText } from "./execution/json-answer";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginLandingPageLocalDefault } from "@apollo/server/plugin/landingPage/default";
import type { Logger } from "pino";
import type { Authenticator } from "./auth/authenticator";
import type { Config } from "./config";
import { createContextFactory } from "./context/context-factory";
import type { RequestContext } from "./context/request-context";
import { ExecutionSeamPlugin } from "./execution/apollo/execution-seam.plugin";
import { ExecutionSeam } from "./execution/execution-seam";
import { createErrorFormatter } from "./execution/format-error";
import type { OperationRule } from "./execution/operation-rule";
import { PreparedOperationCache } from "./execution/prepared/prepared-operation-cache";
import { PreparedOperationLane } from "./execution/prepared/prepared-operation-lane";
import { documentLimitRules } from "./execution/rules/document-limits";
import { OperationRecorder } from "./execution/rules/operation-recorder";
import { SessionReadLimit } from "./execution/rules/session-read-limit";
import { timeRootFields } from "./execution/time-root-fields";
import { TenantLargeRequestBudget } from "./tenants/tenant-large-request-budget";
import { createHttpApp } from "./http/http-app";
import { LiveUpdates } from "./live/live-updates";
import { createSseTransport } from "./live/transports/sse-transport";
import { SubscriptionDocuments } from "./live/transports/subscription-operation";
import { SharingPlans } from "./live/sharing-plan";
import { attachWebSocketTransport } from "./live/transports/websocket-transport";
import { Metrics } from "./metrics/metrics";
import { AdmittedSessionStore } from "./store/admitted-session-store";
import { buildSessionSchema } from "./schema";
import { OperationTracing } from "./tracing/operation-tracing";
import { MAX_SESSION_READS_PER_REQUEST } from "./sessions/session-loader";
import { storeAnswers } from "./sessions/session-store";
import type { Backend } from "./store/backend";
import { SessionService } from "./sessions/session.service";

export interface ServerDeps {
  config: Config;
  logger: Logger;
  backend: Backend;
  authenticator: Authenticator;
  /** Tracing (main.ts starts it when OTEL_* asks for it): a span per operation, root field and store call. */
  tracer?: Tracer;
  /** Rules run after the server's own on every path (tests observe operations with one). */
  extraRules?: readonly OperationRule[];
}

export interface SessionContextServer {
  readonly httpServer: Server;
  readonly apollo: ApolloServer<RequestContext>;
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * Ends live connections (WebSockets with 1001), stops accepting, lets in-flight requests finish, stops Apollo. Does
   * not close the store or its change feed (main owns them).
   */
  stop(): Promise<void>;
}

/** Builds the Apollo server and its HTTP app, started but not listening: main.ts and tests both use this. */
export async function createServer(deps: ServerDeps): Promise<SessionContextServer> {
  const { config, logger, backend } = deps;
  const metrics = new Metrics();
  // Every request's store calls pass the process's bounds: commands in flight, and each tenant's writes.
  const store = new AdmittedSessionStore(backend.sessions, {
    maxInFlight: config.redisMaxInFlight,
    tenantWritesInFlight: config.tenantWritesInFlight,
    inFlight: backend.commandsInFlight,
    refused: (reason) => metrics.storeCommandsRefused.labels({ reason }).inc(),
  });
  metrics.storeInFlight = backend.commandsInFlight ?? (() => 0);
  const sessionService = new SessionService({
    maxTtlSeconds: config.maxTtlSeconds,
    maxContextBytes: config.maxContextBytes,
  });
  const schema = await buildSessionSchema({
    sessionService,
    backend,
    settingsBounds: {
      maxTtlSeconds: config.maxTtlSeconds,
      cleanupMinIntervalSeconds: config.cleanupMinIntervalSeconds,
    },
  });
  timeRootFields(schema, metrics, deps.tracer);
  metrics.watchStore(() => storeAnswers(store, 1000));
  const httpServer = createHttpServer();
  const includeStacktrace = !config.production;
  const seam = new ExecutionSeam({
    rules: [
      // First: its span is the parent of everything the other rules and the resolvers do.
      ...(deps.tracer ? [new OperationTracing(deps.tracer)] : []),
      SessionReadLimit({ maxReads: MAX_SESSION_READS_PER_REQUEST }),
      new OperationRecorder({ metrics, logger, slowOperationMs: config.slowOperationMs }),
      ...(deps.extraRules ?? []),
    ],
    validationRules: documentLimitRules(),
    formatError: createErrorFormatter(logger, config.production),
    includeStacktrace,
  });
  const prepared = new PreparedOperationCache();
  const lane = new PreparedOperationLane({ schema, seam, prepared, metrics });

  const updates = new LiveUpdates({ feed: backend.changes, metrics, maxSubscriptions: config.maxSubscriptions });
  const live = {
    schema,
    seam,
    authenticator: deps.authenticator,
    store,
    metrics,
    updates,
    tracer: deps.tracer,
    documents: new SubscriptionDocuments(schema, seam),
    plans: new SharingPlans(schema),
  };
  const webSockets = attachWebSocketTransport({
    ...live,
    httpServer,
    path: "/graphql",
    logger,
    keepAliveMs: config.subscriptionKeepAliveMs,
  });
  const serverSentEvents = createSseTransport(live);

  const apollo = new ApolloServer<RequestContext>({
    schema,
    logger: logger.child({ component: "apollo" }),
    introspection: config.introspection,
    includeStacktraceInErrorResponses: includeStacktrace,
    // main.ts owns SIGTERM/SIGINT: it stops the scheduler and closes Redis too. Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
    hideSchemaDetailsFromClientErrors: config.production,
    formatError: seam.formatError,
    // Copies stored context JSON into the answer (JsonText), as the prepared lane does: the same bytes either way.
    stringifyResult: writeJsonAnswerText,
    validationRules: [...seam.validationRules],
    // Persisted-query hashes live in the same Redis as the sessions (in memory with the embedded store).
    persistedQueries: { cache: backend.queryCache, ttl: 86_400 },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // Our documents are per user and never cached by a CDN; the plugin hooks every field for nothing.
      ApolloServerPluginCacheControlDisabled(),
      // Apollo Sandbox in development only; production serves no landing page at all.
      config.production ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault(),
      ExecutionSeamPlugin(seam),
      prepared.plugin,
    ],
  });
  await apollo.start();

  // Room for a full context (JSON escaping can double it) plus the document and other variables.
  const maxBodyBytes = Math.max(1024 * 1024, config.maxContextBytes * 4);
  httpServer.on(
    "request",
    createHttpApp({
      apollo,
      context: createContextFactory({ authenticator: deps.authenticator, store, metrics, tracer: deps.tracer }),
      store,
      metrics,
      logger,
      corsOrigins: config.corsOrigins,
      maxBodyBytes,
      readinessTimeoutMs: 1500,
      lane,
      stream: (req, res) => void serverSentEvents.handle(req, res),
      largeRequests: {
        budget: new TenantLargeRequestBudget({
          largeRequestBytes: config.tenantLargeRequestBytes,
          bytesPerSecond: config.tenantLargeBytesPerSecond,
          // A full bucket takes any request, however large.
          burstBytes: Math.max(config.tenantLargeBytesPerSecond, maxBodyBytes),
        }),
        tenantOf: async (headers) => (await deps.authenticator.authenticate(headers)).tenantId,
        refused: () => metrics.requestsRefused.labels({ reason: "tenant_large_bytes" }).inc(),
      },
    }),
  );

  return {
    httpServer,
    apollo,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(port, host, () => {
          httpServer.off("error", reject);
          resolve(httpServer.address() as AddressInfo);
        });
      }),
    stop: async () => {
      // Live connections first: WebSockets close with 1001 after what is queued on them, SSE streams complete.
      serverSentEvents.close();
      await webSockets.close();
      await apollo.stop();
    },
  };
}
