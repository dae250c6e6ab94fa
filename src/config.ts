import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { RedisAddress, RedisSecurity } from "./store/redis/redis-client";

/**
 * The only reader of `process.env`. Parsed once at start-up into a frozen, typed object; every bad variable is
 * reported (one line each) before the process exits.
 */
export type AuthMode = "jwt" | "gateway";

export interface Config {
  readonly nodeEnv: string;
  readonly production: boolean;
  readonly port: number;
  readonly host: string;
  /**
   * `redis://` or `rediss://` of a single Redis. At most one of `redisUrl`, `redisCluster` and `redisSentinel` is
   * set; none of them means the embedded in-process store.
   */
  readonly redisUrl: string | undefined;
  /** Seed nodes of a Redis Cluster (the client discovers the rest). */
  readonly redisCluster: readonly RedisAddress[] | undefined;
  /** Sentinels and the name of the master they monitor. */
  readonly redisSentinel: { readonly sentinels: readonly RedisAddress[]; readonly name: string } | undefined;
  /**
   * TLS and credentials for whichever Redis is configured (REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS,
   * REDIS_TLS_CA_FILE, REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD; with REDIS_URL, `rediss://` and the URL's
   * user and password count too). Holds secrets: never log it.
   */
  readonly redisSecurity: RedisSecurity;
  readonly auth: {
    readonly mode: AuthMode;
    readonly jwtSecret: string | undefined;
    readonly jwksUrl: string | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly gatewaySecret: string | undefined;
  };
  readonly maxContextBytes: number;
  readonly maxTtlSeconds: number;
  readonly slowOperationMs: number;
  /** Live subscriptions (WebSocket and SSE) one process serves at once; one more is refused, retryable. */
  readonly maxSubscriptions: number;
  /**
   * Store commands one process may have in flight (sent and not answered, timed-out ones included); a request that
   * finds this many is refused at once, retryable (REDIS_MAX_IN_FLIGHT).
   */
  readonly redisMaxInFlight: number;
  /** Writes of one tenant one process runs at once; one more is refused at once, retryable (TENANT_WRITES_IN_FLIGHT). */
  readonly tenantWritesInFlight: number;
  /** A request body larger than this is large, and takes from its tenant's budget (TENANT_LARGE_REQUEST_BYTES). */
  readonly tenantLargeRequestBytes: number;
  /**
   * Bytes of large requests one tenant may send one process per second on average; one more is refused before its
   * body is read, retryable (TENANT_LARGE_BYTES_PER_SECOND).
   */
  readonly tenantLargeBytesPerSecond: number;
  /** WebSocket ping interval (ms); a client that has not answered the previous ping by the next one is dropped. */
  readonly subscriptionKeepAliveMs: number;
  /**
   * OpenTelemetry tracing, from the standard OTEL_* variables: where OTLP/HTTP spans go and how often a batch is
   * sent. Undefined (no SDK at all) unless an OTLP endpoint is set and tracing is not turned off.
   */
  readonly tracing: Readonly<{ tracesUrl: string; scheduleDelayMs: number }> | undefined;
  readonly introspection: boolean;
  /** `"any"`: echo every origin (development default); otherwise the exact allowed origins (may be empty). */
  readonly corsOrigins: "any" | readonly string[];
  readonly logLevel: string;
  readonly cleanupMinIntervalSeconds: number;
}

const integer = (min: number, max: number) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(max));

const boolean = z.enum(["true", "false"], { message: 'must be "true" or "false"' }).transform((v) => v === "true");

const redisUrl = z
  .string()
  .refine((v) => /^rediss?:\/\/.+/.test(v) && URL.canParse(v), "must be a redis:// or rediss:// URL");

const httpUrl = z.string().refine((v) => /^https?:\/\//.test(v) && URL.canParse(v), "must be an http(s):// URL");

const nonEmpty = z.string().min(1, "must not be empty");

/** `host:port` (an IPv6 host in brackets: `[::1]:7000`) → address, or undefined when it is not one. */
function parseAddress(entry: string): RedisAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/,]+)):(\d{1,5})$/.exec(entry);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return Object.freeze({ host: match[1] ?? match[2], port });
}

/** Comma-separated `host:port` list (spaces around commas ignored); one issue naming the first bad entry. */
const addressList = z.string().transform((value, ctx) => {
  const entries = value.split(",").map((entry) => entry.trim());
  const addresses: RedisAddress[] = [];
  for (const entry of entries) {
    const address = parseAddress(entry);
    if (address === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `must be host:port,host:port,… (ports 1-65535); ${entry === "" ? "an entry is empty" : `bad entry ${JSON.stringify(entry)}`}`,
      });
      return z.NEVER;
    }
    addresses.push(address);
  }
  return Object.freeze(addresses);
});

const envSchema = z.object({
  NODE_ENV: z.string().default("development"),
  PORT: integer(0, 65535).default(4000),
  HOST: nonEmpty.default("0.0.0.0"),
  REDIS_URL: redisUrl.optional(),
  REDIS_CLUSTER_NODES: addressList.optional(),
  REDIS_SENTINELS: addressList.optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[^\s]+$/, "must be the master name the Sentinels monitor (no spaces)")
    .optional(),
  REDIS_USERNAME: nonEmpty.optional(),
  REDIS_PASSWORD: nonEmpty.optional(),
  REDIS_TLS: boolean.optional(),
  REDIS_TLS_CA_FILE: nonEmpty.optional(),
  REDIS_SENTINEL_USERNAME: nonEmpty.optional(),
  REDIS_SENTINEL_PASSWORD: nonEmpty.optional(),
  JWT_SECRET: nonEmpty.optional(),
  JWKS_URL: httpUrl.optional(),
  JWT_ISSUER: nonEmpty.optional(),
  JWT_AUDIENCE: nonEmpty.optional(),
  AUTH_MODE: z.enum(["jwt", "gateway"], { message: 'must be "jwt" or "gateway"' }).optional(),
  GATEWAY_SECRET: nonEmpty.optional(),
  MAX_CONTEXT_BYTES: integer(1024, 64 * 1024 * 1024).default(262144),
  MAX_TTL_SECONDS: integer(1, 10 * 365 * 86400).default(2592000),
  SLOW_OPERATION_MS: integer(0, 3_600_000).default(100),
  MAX_SUBSCRIPTIONS: integer(1, 1_000_000).default(10_000),
  REDIS_MAX_IN_FLIGHT: integer(1, 1_000_000).default(1000),
  TENANT_WRITES_IN_FLIGHT: integer(1, 1_000_000).default(256),
  TENANT_LARGE_REQUEST_BYTES: integer(1024, 64 * 1024 * 1024).default(16_384),
  TENANT_LARGE_BYTES_PER_SECOND: integer(1024, 1024 * 1024 * 1024).default(524_288),
  SUBSCRIPTION_KEEPALIVE_MS: integer(100, 3_600_000).default(12_000),
  // OpenTelemetry's own names (the OTLP exporter reads its other OTEL_EXPORTER_OTLP_* variables itself).
  OTEL_SDK_DISABLED: boolean.optional(),
  OTEL_TRACES_EXPORTER: z.enum(["otlp", "none"], { message: 'must be "otlp" or "none"' }).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_BSP_SCHEDULE_DELAY: integer(1, 600_000).default(5000),
  INTROSPECTION: boolean.optional(),
  CORS_ORIGINS: z.string().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CLEANUP_MIN_INTERVAL_SECONDS: integer(1, 10 * 365 * 86400).default(60),
});

// Values that may carry credentials are never echoed in a start-up error (a Redis URL can hold a password).
const SECRET_VARIABLES = new Set([
  "REDIS_URL",
  "REDIS_PASSWORD",
  "REDIS_SENTINEL_PASSWORD",
  "JWT_SECRET",
  "GATEWAY_SECRET",
  "JWKS_URL",
]);

/** Every variable the configuration reads (the README's table lists each one). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

function shown(name: string, value: string | undefined): string {
  if (SECRET_VARIABLES.has(name)) return "a value that is not shown";
  return JSON.stringify(value);
}

type Env = z.infer<typeof envSchema>;

/** The variables that say how to reach the configured Redis: meaningless without one. */
const REDIS_ACCESS_VARIABLES = [
  "REDIS_USERNAME",
  "REDIS_PASSWORD",
  "REDIS_TLS",
  "REDIS_TLS_CA_FILE",
  "REDIS_SENTINEL_USERNAME",
  "REDIS_SENTINEL_PASSWORD",
] as const;

/** REDIS_TLS as parsed, or as the raw text when another variable was bad (see loadConfig). */
const on = (value: unknown) => value === true || value === "true";

/**
 * TLS and credentials, checked across the variables; appends one line per problem. REDIS_URL carries its own:
 * `rediss://` is TLS and `redis://` is not (REDIS_TLS, when set too, must agree), and credentials in the URL are
 * used as they are — REDIS_USERNAME and REDIS_PASSWORD apply to a URL only when it has none, so a password is
 * given in one place only. Cluster and Sentinel take REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS for the data
 * nodes; REDIS_TLS also covers the Sentinels, which have credentials of their own. `bad` names the variables whose
 * own value was refused: rules that would read them are skipped, so each problem is reported once.
 */
function redisSecurityOf(e: Env, bad: ReadonlySet<string>, problems: string[]): RedisSecurity {
  const sentinelMode = Boolean(e.REDIS_SENTINELS || e.REDIS_SENTINEL_NAME);
  if (!e.REDIS_URL && !e.REDIS_CLUSTER_NODES && !sentinelMode) {
    for (const name of REDIS_ACCESS_VARIABLES) {
      if (e[name] !== undefined)
        problems.push(`${name}: set, but no Redis is configured (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS)`);
    }
    return Object.freeze({});
  }

  let tls = on(e.REDIS_TLS);
  let urlHasCredentials = false;
  let tlsContradicted = false;
  if (e.REDIS_URL && !bad.has("REDIS_URL")) {
    const url = new URL(e.REDIS_URL);
    tls = url.protocol === "rediss:";
    urlHasCredentials = url.username !== "" || url.password !== "";
    if (url.username !== "" && url.password === "")
      problems.push("REDIS_URL: has a user name but no password (rediss://user:password@host:port)");
    for (const name of ["REDIS_USERNAME", "REDIS_PASSWORD"] as const) {
      if (urlHasCredentials && e[name])
        problems.push(`${name}: REDIS_URL carries credentials already; give the user and password in one place`);
    }
    if (e.REDIS_TLS !== undefined && !bad.has("REDIS_TLS") && on(e.REDIS_TLS) !== tls) {
      tlsContradicted = true;
      problems.push(
        `REDIS_TLS: contradicts REDIS_URL, whose scheme decides (rediss:// is TLS, redis:// is not); leave REDIS_TLS unset or make them agree`,
      );
    }
  }
  if (!sentinelMode) {
    for (const name of ["REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD"] as const) {
      if (e[name])
        problems.push(
          `${name}: only for Sentinels (REDIS_SENTINELS); the Redis itself takes REDIS_USERNAME and REDIS_PASSWORD`,
        );
    }
  }
  if (e.REDIS_USERNAME && !e.REDIS_PASSWORD && !urlHasCredentials)
    problems.push("REDIS_USERNAME: needs REDIS_PASSWORD (Redis authenticates a user by both)");
  if (sentinelMode && e.REDIS_SENTINEL_USERNAME && !e.REDIS_SENTINEL_PASSWORD)
    problems.push("REDIS_SENTINEL_USERNAME: needs REDIS_SENTINEL_PASSWORD (a Sentinel authenticates a user by both)");

  let ca: string | undefined;
  if (e.REDIS_TLS_CA_FILE) {
    ca = readCaFile(e.REDIS_TLS_CA_FILE, problems);
    if (!tls && !tlsContradicted && !bad.has("REDIS_TLS") && !bad.has("REDIS_URL"))
      problems.push(
        "REDIS_TLS_CA_FILE: TLS is off; use a rediss:// REDIS_URL, or REDIS_TLS=true with REDIS_CLUSTER_NODES or REDIS_SENTINELS",
      );
  }
  return Object.freeze({
    username: e.REDIS_USERNAME,
    password: e.REDIS_PASSWORD,
    tls: tls ? Object.freeze({ ca }) : undefined,
    sentinelUsername: e.REDIS_SENTINEL_USERNAME,
    sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
  });
}

/**
 * The CA certificates of REDIS_TLS_CA_FILE, read once at start-up (a changed file takes a restart), or undefined
 * with a problem line when the file cannot be read or holds anything but PEM certificates.
 */
function readCaFile(path: string, problems: string[]): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    problems.push(`REDIS_TLS_CA_FILE: cannot be read (${code}) (got ${JSON.stringify(path)})`);
    return undefined;
  }
  const certificates = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (certificates.length === 0 || !certificates.every(isCertificate)) {
    problems.push(
      `REDIS_TLS_CA_FILE: must hold PEM certificates (-----BEGIN CERTIFICATE----- …) (got ${JSON.stringify(path)})`,
    );
    return undefined;
  }
  return certificates.join("\n");
}

function isCertificate(pem: string): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** Parses the environment; throws a ConfigError listing every problem, one line per variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable (`FOO=`) counts as unset, the way shells and compose files usually mean it.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = envSchema.safeParse(present);
  const issues = parsed.success ? [] : parsed.error.issues;
  const problems: string[] = issues.map(
    (issue) =>
      `${issue.path.join(".")}: ${issue.message} (got ${shown(String(issue.path[0]), present[String(issue.path[0])])})`,
  );
  // The checks across variables below look at which variables are set (all strings), and read a value only when it
  // passed above (`bad`), so they also run on the raw values when a value above is bad: every problem is listed at
  // once. The config is built from parsed.data only, since any problem throws before that.
  const e = parsed.success ? parsed.data : (present as unknown as Env);
  const bad = new Set(issues.map((issue) => String(issue.path[0])));
  const production = e.NODE_ENV === "production";

  const redisChoices = (["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS"] as const).filter((name) => e[name]);
  if (redisChoices.length > 1)
    problems.push(
      `${redisChoices[1]}: set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS (got ${redisChoices.join(" and ")})`,
    );
  if (e.REDIS_SENTINELS && !e.REDIS_SENTINEL_NAME)
    problems.push("REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master name the Sentinels monitor)");
  if (e.REDIS_SENTINEL_NAME && !e.REDIS_SENTINELS)
    problems.push("REDIS_SENTINELS: required with REDIS_SENTINEL_NAME (host:port of the Sentinels)");
  if (production && redisChoices.length === 0 && !e.REDIS_SENTINEL_NAME)
    problems.push(
      "REDIS_URL: required when NODE_ENV=production, or REDIS_CLUSTER_NODES or REDIS_SENTINELS (the embedded store is one process only and not durable)",
    );

  const redisSecurity = redisSecurityOf(e, bad, problems);

  const hasJwtKey = Boolean(e.JWT_SECRET || e.JWKS_URL);
  if (e.JWT_SECRET && e.JWKS_URL) problems.push("JWT_SECRET: set either JWT_SECRET or JWKS_URL, not both");
  const mode: AuthMode = e.AUTH_MODE ?? (hasJwtKey ? "jwt" : "gateway");
  if (mode === "jwt" && !hasJwtKey) problems.push("AUTH_MODE: jwt needs JWT_SECRET or JWKS_URL");
  if (production && !e.AUTH_MODE && !hasJwtKey)
    problems.push(
      "AUTH_MODE: production needs authentication configured (JWT_SECRET, JWKS_URL, or AUTH_MODE=gateway with GATEWAY_SECRET)",
    );
  else if (production && mode === "gateway" && !e.GATEWAY_SECRET)
    problems.push("GATEWAY_SECRET: required with AUTH_MODE=gateway when NODE_ENV=production");

  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    production,
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER_NODES,
    redisSentinel:
      e.REDIS_SENTINELS && e.REDIS_SENTINEL_NAME
        ? Object.freeze({ sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME })
        : undefined,
    redisSecurity,
    auth: Object.freeze({
      mode,
      jwtSecret: e.JWT_SECRET,
      jwksUrl: e.JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      gatewaySecret: e.GATEWAY_SECRET,
    }),
    maxContextBytes: e.MAX_CONTEXT_BYTES,
    maxTtlSeconds: e.MAX_TTL_SECONDS,
    slowOperationMs: e.SLOW_OPERATION_MS,
    maxSubscriptions: e.MAX_SUBSCRIPTIONS,
    redisMaxInFlight: e.REDIS_MAX_IN_FLIGHT,
    tenantWritesInFlight: e.TENANT_WRITES_IN_FLIGHT,
    tenantLargeRequestBytes: e.TENANT_LARGE_REQUEST_BYTES,
    tenantLargeBytesPerSecond: e.TENANT_LARGE_BYTES_PER_SECOND,
    subscriptionKeepAliveMs: e.SUBSCRIPTION_KEEPALIVE_MS,
    tracing: tracingOf(e),
    introspection: e.INTROSPECTION ?? !production,
    corsOrigins:
      e.CORS_ORIGINS === undefined
        ? production
          ? Object.freeze([])
          : "any"
        : Object.freeze(
            e.CORS_ORIGINS.split(",")
              .map((o) => o.trim())
              .filter((o) => o.length > 0),
          ),
    logLevel: e.LOG_LEVEL,
    cleanupMinIntervalSeconds: e.CLEANUP_MIN_INTERVAL_SECONDS,
  });
}

/** What the data tool (src/cli.ts) needs of the configuration: where the service's Redis is and its limits. */
export interface ToolConfig {
  /** The Redis the service uses, or undefined when none is configured (only a dry run can do without). */
  readonly redis: RedisToolTarget | undefined;
  readonly redisSecurity: RedisSecurity;
  readonly maxContextBytes: number;
  readonly maxTtlSeconds: number;
}

export type RedisToolTarget =
  | { readonly url: string }
  | { readonly clusterNodes: readonly RedisAddress[] }
  | { readonly sentinels: readonly RedisAddress[]; readonly sentinelName: string };

/**
 * The server's configuration as the data tool reads it: the same variables and the same checks, except the rules
 * that only concern serving requests (authentication in production), which a tool run beside the service must not
 * trip over. Throws ConfigError like loadConfig.
 */
export function loadToolConfig(env: NodeJS.ProcessEnv = process.env): ToolConfig {
  const config = loadConfig({
    ...env,
    NODE_ENV: "development",
    AUTH_MODE: undefined,
    JWT_SECRET: undefined,
    JWKS_URL: undefined,
  });
  const redis: RedisToolTarget | undefined = config.redisUrl
    ? { url: config.redisUrl }
    : config.redisCluster
      ? { clusterNodes: config.redisCluster }
      : config.redisSentinel
        ? { sentinels: config.redisSentinel.sentinels, sentinelName: config.redisSentinel.name }
        : undefined;
  return Object.freeze({
    redis,
    redisSecurity: config.redisSecurity,
    maxContextBytes: config.maxContextBytes,
    maxTtlSeconds: config.maxTtlSeconds,
  });
}

/** `host:port,host:port,…` as REDIS_CLUSTER_NODES takes it, or the problem with it (for the tool's own options). */
export function parseAddressList(value: string): readonly RedisAddress[] | string {
  const parsed = addressList.safeParse(value);
  return parsed.success ? parsed.data : parsed.error.issues[0].message;
}

/**
 * Tracing is on when an OTLP endpoint is given and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none
 * says otherwise. The traces URL is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or OTEL_EXPORTER_OTLP_ENDPOINT
 * plus `/v1/traces` (the OTLP/HTTP rule for the signal-less variable).
 */
function tracingOf(e: z.infer<typeof envSchema>): Config["tracing"] {
  if (e.OTEL_SDK_DISABLED === true || e.OTEL_TRACES_EXPORTER === "none") return undefined;
  const base = e.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base === undefined ? undefined : `${base.replace(/\/+$/, "")}/v1/traces`);
  if (tracesUrl === undefined) return undefined;
  return Object.freeze({ tracesUrl, scheduleDelayMs: e.OTEL_BSP_SCHEDULE_DELAY });
}
