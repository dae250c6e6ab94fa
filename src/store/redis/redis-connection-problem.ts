/**
 * What an operator needs to know about a failed connection attempt: the cause in plain words and what to check.
 * ioredis reports a failed attempt on every reconnect (every second here), so the log keeps one line per cause:
 * `kind` and `code` stay the same across attempts that fail the same way.
 */
export interface ConnectionProblem {
  readonly kind: "credentials" | "sentinel-credentials" | "certificate" | "tls-handshake" | "not-tls" | "unreachable";
  /** The reply or error code (`WRONGPASS`, `SELF_SIGNED_CERT_IN_CHAIN`, `ECONNREFUSED`, …). */
  readonly code: string;
  /** A misconfiguration is an error; a Redis that is down or restarting is a warning. */
  readonly level: "error" | "warn";
  readonly message: string;
  /** The message of the error explained (for a Cluster, of the node error behind it). */
  readonly detail: string;
}

/** How the connection was attempted. */
export interface Attempt {
  /** TLS was asked for (rediss://, REDIS_TLS=true). */
  readonly tls: boolean;
  /** The client had a socket but was not ready yet: the failure came during the handshake (AUTH, ready check). */
  readonly handshaking: boolean;
}

// Replies that refuse the credentials: a wrong password or user (WRONGPASS), none given where one is needed (NOAUTH).
const REFUSED = /\b(WRONGPASS|NOAUTH)\b/;
// Node's certificate verification codes (tls.connect): unknown CA, self-signed, expired, wrong host name, …
const CERTIFICATE = /CERT|UNABLE_TO_|INVALID_CA|PATH_LENGTH_EXCEEDED|INVALID_PURPOSE|HOSTNAME_MISMATCH/;
// ioredis's own refusals while it is not connected: consequences of a cause reported on its own.
const CONSEQUENCE = /Stream isn't writeable|Connection is closed|max retries per request limit|enableOfflineQueue/;

const RETRYING =
  "retrying every second: a fix on the Redis side is picked up by itself, a changed variable takes a restart";

/**
 * Explains one `error` event of an ioredis client (or Cluster), or returns undefined for errors that only follow
 * from another one. Error messages of Redis and Node never contain the password; neither does what this returns.
 */
export function connectionProblem(error: Error, attempt: Attempt): ConnectionProblem | undefined {
  // A Cluster that could not load its slot map from any node: the last node's error says why.
  const cause = (error as { lastNodeError?: unknown }).lastNodeError;
  if (cause instanceof Error) return connectionProblem(cause, attempt);
  const message = error.message;
  const problem: Problem = (kind, code, level, text) => ({ kind, code, level, message: text, detail: message });
  const code = (error as NodeJS.ErrnoException).code ?? /^[A-Z]+\b/.exec(message)?.[0] ?? "";

  // "All sentinels are unreachable. … Last error: WRONGPASS …": the Sentinels' own credentials.
  if (/sentinel/i.test(message)) {
    const refused = REFUSED.exec(message);
    if (refused)
      return problem(
        "sentinel-credentials",
        refused[1],
        "error",
        `a Sentinel refused the credentials (${refused[1]}): check REDIS_SENTINEL_USERNAME and REDIS_SENTINEL_PASSWORD against the Sentinels' ACL; ${RETRYING}`,
      );
    if (/certificate/i.test(message))
      return problem(
        "certificate",
        "SENTINEL_CERTIFICATE",
        "error",
        `a Sentinel's TLS certificate is not trusted: REDIS_TLS_CA_FILE must hold the CA that signed it; ${RETRYING}`,
      );
  }
  const refused = REFUSED.exec(message);
  if (refused)
    return problem(
      "credentials",
      refused[1],
      "error",
      `Redis refused the credentials (${refused[1]}): check REDIS_USERNAME and REDIS_PASSWORD (or the user and password in REDIS_URL) against the ACL user on Redis; ${RETRYING}`,
    );
  if (CERTIFICATE.test(code))
    return problem(
      "certificate",
      code,
      "error",
      `Redis's TLS certificate is not trusted (${code}: ${message}): REDIS_TLS_CA_FILE must hold the CA that signed it, and the certificate must name the host connected to; ${RETRYING}`,
    );
  if (CONSEQUENCE.test(message)) return undefined;
  if (attempt.handshaking && code === "ECONNRESET" && !attempt.tls)
    return problem(
      "not-tls",
      code,
      "error",
      `Redis closed the connection before answering (${code}): if that port serves TLS only, use rediss:// in REDIS_URL, or REDIS_TLS=true; ${RETRYING}`,
    );
  if (attempt.tls && (code.startsWith("ERR_SSL_") || /secure TLS connection|ETIMEDOUT/.test(`${code} ${message}`)))
    return problem(
      "tls-handshake",
      code,
      "error",
      `the TLS handshake with Redis did not complete (${code}: ${message}): is that a TLS port, and is Redis reachable? ${RETRYING}`,
    );
  return problem("unreachable", code, "warn", "redis connection error");
}

type Problem = (
  kind: ConnectionProblem["kind"],
  code: string,
  level: ConnectionProblem["level"],
  message: string,
) => ConnectionProblem;
