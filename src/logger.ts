import pino, { type Logger } from "pino";

/**
 * Structured JSON logs on stdout. Credentials and context payloads never reach a log line: the redact paths
 * are a safety net for anything that logs a request by mistake, or an ioredis error as `err` (a Redis error carries
 * the command's arguments: a context being written, or the password of a refused AUTH).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "session-context-service" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [
        "req.headers.authorization",
        "req.headers['x-gateway-secret']",
        "headers.authorization",
        "err.command.args",
        "err.lastNodeError.command.args",
      ],
      censor: "[redacted]",
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
