import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer } from "@apollo/server";
import { unwrapResolverError } from "@apollo/server/errors";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginLandingPageLocalDefault } from "@apollo/server/plugin/landingPage/default";
import type { GraphQLFormattedError } from "graphql";
import type { Logger } from "pino";
import type { Authenticator } from "./auth/authenticator";
import type { Config } from "./config";
import { createContextFactory } from "./context/context-factory";
import type { RequestContext } from "./context/request-context";
import { ErrorCode } from "./errors/error-code";
import { createHttpApp } from "./http/http-app";
import { PreparedOperationLane } from "./http/prepared-operation-lane";
import { Metrics } from "./metrics/metrics";
import { documentLimitRules } from "./plugins/document-limits";
import { LatencyPlugin, OperationRecorder, timeRootFields } from "./plugins/latency.plugin";
import { SessionReadLimitPlugin } from "./plugins/session-read-limit.plugin";
import { buildSessionSchema } from "./schema";
import { MAX_SESSION_READS_PER_REQUEST } from "./sessions/session-loader";
import type { Backend } from "./store/backend";
import { SessionService } from "./sessions/session.service";

export interface ServerDeps {
  config: Config;
  logger: Logger;
  backend: Backend;
  authenticator: Authenticator;
}

export interface SessionContextServer {
  readonly httpServer: Server;
  readonly apollo: ApolloServer<RequestContext>;
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting, lets in-flight requests finish, stops Apollo. Does not close the store (main owns it). */
  stop(): Promise<void>;
}

/** Builds the Apollo server and its HTTP app, started but not listening: main.ts and tests both use this. */
export async function createServer(deps: ServerDeps): Promise<SessionContextServer> {
  const { config, logger, backend } = deps;
  const store = backend.sessions;
  const metrics = new Metrics();
  const sessions = new SessionService({
    maxTtlSeconds: config.maxTtlSeconds,
    maxContextBytes: config.maxContextBytes,
  });
  const schema = await buildSessionSchema({
    sessions,
    backend,
    settingsBounds: {
      maxTtlSeconds: config.maxTtlSeconds,
      cleanupMinIntervalSeconds: config.cleanupMinIntervalSeconds,
    },
  });
  timeRootFields(schema, metrics);
  const httpServer = createHttpServer();
  const recorder = new OperationRecorder({ metrics, logger, slowOperationMs: config.slowOperationMs });
  const includeStacktrace = !config.production;
  const formatErrorForClient = (formatted: GraphQLFormattedError, error: unknown) =>
    formatError(formatted, error, logger, config.production);
  const lane = new PreparedOperationLane({
    schema,
    recorder,
    metrics,
    formatError: formatErrorForClient,
    includeStacktrace,
    maxSessionReads: MAX_SESSION_READS_PER_REQUEST,
  });

  const apollo = new ApolloServer<RequestContext>({
    schema,
    logger: logger.child({ component: "apollo" }),
    introspection: config.introspection,
    includeStacktraceInErrorResponses: includeStacktrace,
    // main.ts owns SIGTERM/SIGINT: it stops the scheduler and closes Redis too. Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
    hideSchemaDetailsFromClientErrors: config.production,
    formatError: formatErrorForClient,
    validationRules: documentLimitRules(),
    // Persisted-query hashes live in the same Redis as the sessions (in memory with the embedded store).
    persistedQueries: { cache: backend.queryCache, ttl: 86_400 },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // Our documents are per user and never cached by a CDN; the plugin hooks every field for nothing.
      ApolloServerPluginCacheControlDisabled(),
      // Apollo Sandbox in development only; production serves no landing page at all.
      config.production ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault(),
      SessionReadLimitPlugin({ maxReads: MAX_SESSION_READS_PER_REQUEST }),
      LatencyPlugin(recorder),
      lane.plugin,
    ],
  });
  await apollo.start();

  httpServer.on(
    "request",
    createHttpApp({
      apollo,
      context: createContextFactory({ authenticator: deps.authenticator, store, metrics }),
      store,
      metrics,
      logger,
      corsOrigins: config.corsOrigins,
      // Room for a full context (JSON escaping can double it) plus the document and other variables.
      maxBodyBytes: Math.max(1024 * 1024, config.maxContextBytes * 4),
      readinessTimeoutMs: 1500,
      lane,
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
    stop: () => apollo.stop(),
  };
}

// graphql-js names the offending input in the message of a variable it could not coerce:
// `Variable "$input" got invalid value [1] at "input.conversationState"; Expected type "JSONObject". …`
const INVALID_VARIABLE = /^Variable "\$([^"]+)" got invalid value [\s\S]*?(?: at "([^"]+)")?; /;

/**
 * Errors with one of our codes pass through; a variable graphql-js refused gets `extensions.field` like our own
 * BAD_USER_INPUT errors. Anything else is a bug or an unexpected failure: it is logged with its stack here and,
 * in production, reaches the client only as "Internal server error".
 */
function formatError(
  formatted: GraphQLFormattedError,
  error: unknown,
  logger: Logger,
  production: boolean,
): GraphQLFormattedError {
  if (formatted.extensions?.code === ErrorCode.BAD_USER_INPUT && formatted.extensions.field === undefined) {
    const match = INVALID_VARIABLE.exec(formatted.message);
    if (match) return { ...formatted, extensions: { ...formatted.extensions, field: match[2] ?? match[1] } };
  }
  if (formatted.extensions?.code !== ErrorCode.INTERNAL_SERVER_ERROR) return formatted;
  logger.error({ err: unwrapResolverError(error), path: formatted.path }, "internal error");
  if (!production) return formatted;
  return {
    message: "Internal server error",
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}
