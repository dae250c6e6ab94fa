import "reflect-metadata";
import { createAuthenticator } from "./auth/authenticator";
import { ConfigError, loadConfig, type Config } from "./config";
import { createLogger } from "./logger";
import { createServer } from "./server";
import { CleanupScheduler } from "./cleanup/cleanup-scheduler";
import { createBackend } from "./store/backend";
import { startTracing } from "./tracing/tracing";

/**
 * Composition root: config → logger → store → schema → server → listen → cleanup scheduler; shutdown on
 * SIGTERM/SIGINT.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) {
      process.stderr.write(`${JSON.stringify({ level: "fatal", msg: `invalid configuration: ${problem}` })}\n`);
    }
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  // Before anything else, so that its context manager sees every request from the first.
  const tracing = startTracing(config.tracing);
  if (tracing) logger.info({ tracesUrl: config.tracing?.tracesUrl }, "tracing: exporting spans over OTLP/HTTP");
  const backend = await createBackend(config, logger);
  const server = await createServer({
    config,
    logger,
    backend,
    authenticator: createAuthenticator(config.auth),
    tracer: tracing?.tracer,
  });
  const address = await server.listen(config.port, config.host);
  logger.info(
    { port: address.port, host: config.host, store: backend.sessions.kind, authMode: config.auth.mode },
    `serving http://localhost:${address.port}/graphql`,
  );
  const scheduler = new CleanupScheduler({
    ...backend,
    logger: logger.child({ component: "cleanup" }),
    // Look often enough to start a run within a quarter of the shortest interval a tenant may set, at most 5 s late.
    tickMs: Math.min(5000, Math.max(100, (config.cleanupMinIntervalSeconds * 1000) / 4)),
  });
  scheduler.start();

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    Promise.all([server.stop(), scheduler.stop()])
      .then(() => backend.changes.close())
      .then(() => backend.sessions.close())
      .then(() => tracing?.shutdown()) // sends the spans still batched
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`${JSON.stringify({ level: "fatal", msg: "start-up failed", err: String(error) })}\n`);
  process.exit(1);
});
