import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "../../src/config";
import { makeTestCertificates, type TestCertificates } from "../helpers/tls";

/** The problem lines loadConfig refuses `env` with (fails the test when it accepts it). */
function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** What production needs to start: a Redis and authentication. */
const production = { NODE_ENV: "production", REDIS_URL: "redis://redis:6379", JWT_SECRET: "s3cret" };

describe("Defaults come from the configuration table", () => {
  it("starts with no variables set: port 4000 on 0.0.0.0, embedded store, gateway auth, the documented limits", () => {
    const config = loadConfig({});

    expect(config).toEqual({
      nodeEnv: "development",
      production: false,
      port: 4000,
      host: "0.0.0.0",
      redisUrl: undefined,
      redisCluster: undefined,
      redisSentinel: undefined,
      redisSecurity: {},
      auth: {
        mode: "gateway",
        jwtSecret: undefined,
        jwksUrl: undefined,
        issuer: undefined,
        audience: undefined,
        gatewaySecret: undefined,
      },
      maxContextBytes: 262144,
      maxTtlSeconds: 2592000,
      slowOperationMs: 100,
      maxSubscriptions: 10000,
      redisMaxInFlight: 1000,
      tenantWritesInFlight: 256,
      tenantLargeRequestBytes: 16384,
      tenantLargeBytesPerSecond: 524288,
      subscriptionKeepAliveMs: 12000,
      tracing: undefined,
      introspection: true,
      corsOrigins: "any",
      logLevel: "info",
      cleanupMinIntervalSeconds: 60,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.auth)).toBe(true);
  });

  it("treats an empty variable as unset", () => {
    const config = loadConfig({ PORT: "", REDIS_URL: "", MAX_CONTEXT_BYTES: "", INTROSPECTION: "" });

    expect(config).toMatchObject({ port: 4000, redisUrl: undefined, maxContextBytes: 262144, introspection: true });
  });

  it.each([
    ["JWT_SECRET", "s3cret"],
    ["JWKS_URL", "https://issuer.example/.well-known/jwks.json"],
  ])("uses jwt auth when %s is set", (name, value) => {
    expect(loadConfig({ [name]: value }).auth.mode).toBe("jwt");
  });

  it("reads every variable it is given", () => {
    const config = loadConfig({
      PORT: "8080",
      HOST: "127.0.0.1",
      REDIS_URL: "rediss://user:pw@redis.example:6380/2",
      JWT_SECRET: "s3cret",
      JWT_ISSUER: "https://issuer.example",
      JWT_AUDIENCE: "scs",
      MAX_CONTEXT_BYTES: "1048576",
      MAX_TTL_SECONDS: "3600",
      SLOW_OPERATION_MS: "0",
      LOG_LEVEL: "debug",
      CLEANUP_MIN_INTERVAL_SECONDS: "1",
    });

    expect(config).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      redisUrl: "rediss://user:pw@redis.example:6380/2",
      auth: { mode: "jwt", jwtSecret: "s3cret", issuer: "https://issuer.example", audience: "scs" },
      maxContextBytes: 1048576,
      maxTtlSeconds: 3600,
      slowOperationMs: 0,
      logLevel: "debug",
      cleanupMinIntervalSeconds: 1,
    });
  });
});

describe("A bad value stops the start with one clear line naming the variable", () => {
  it.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["REDIS_URL", "http://redis:6379"],
    ["REDIS_URL", "localhost:6379"],
    ["JWKS_URL", "ftp://issuer.example/jwks"],
    ["AUTH_MODE", "basic"],
    ["MAX_CONTEXT_BYTES", "1.5"],
    ["MAX_TTL_SECONDS", "0"],
    ["SLOW_OPERATION_MS", "fast"],
    ["INTROSPECTION", "yes"],
    ["LOG_LEVEL", "loud"],
    ["CLEANUP_MIN_INTERVAL_SECONDS", "1e3"],
  ])("%s=%s", (name, value) => {
    const problems = problemsOf({ [name]: value });

    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: \\S.*`));
    expect(problems[0]).not.toContain("\n");
  });

  it("lists every problem together, one line each, in the error's message too", () => {
    const env = { NODE_ENV: "production", PORT: "abc", INTROSPECTION: "maybe", LOG_LEVEL: "loud" };

    const problems = problemsOf(env);

    const named = problems.map((line) => line.slice(0, line.indexOf(":")));
    expect(named.sort()).toEqual(["AUTH_MODE", "INTROSPECTION", "LOG_LEVEL", "PORT", "REDIS_URL"]);
    expect(() => loadConfig(env)).toThrow(problems.join("\n"));
  });

  it.each([
    ["AUTH_MODE", { AUTH_MODE: "basic", JWT_SECRET: undefined }],
    ["REDIS_URL", { REDIS_URL: "http://redis:6379" }],
  ])("names a bad %s once in production, though rules across variables also look at it", (name, change) => {
    expect(problemsOf({ ...production, ...change })).toEqual([expect.stringMatching(new RegExp(`^${name}: `))]);
  });

  it("refuses JWT_SECRET together with JWKS_URL, and AUTH_MODE=jwt without either", () => {
    expect(problemsOf({ JWT_SECRET: "s", JWKS_URL: "https://issuer.example/jwks" })).toEqual([
      expect.stringMatching(/^JWT_SECRET: /),
    ]);
    expect(problemsOf({ AUTH_MODE: "jwt" })).toEqual([expect.stringMatching(/^AUTH_MODE: /)]);
  });
});

describe("Production refuses to start without a Redis or without authentication", () => {
  it("starts with REDIS_URL and a JWT key", () => {
    expect(loadConfig(production)).toMatchObject({ production: true, auth: { mode: "jwt" } });
  });

  it("starts in gateway mode with GATEWAY_SECRET", () => {
    const { JWT_SECRET: _, ...withoutJwt } = production;

    const config = loadConfig({ ...withoutJwt, AUTH_MODE: "gateway", GATEWAY_SECRET: "shared" });

    expect(config.auth).toMatchObject({ mode: "gateway", gatewaySecret: "shared" });
  });

  it("refuses without REDIS_URL: the embedded store is one process only", () => {
    expect(problemsOf({ ...production, REDIS_URL: undefined })).toEqual([expect.stringMatching(/^REDIS_URL: /)]);
  });

  it("refuses with no authentication configured", () => {
    expect(problemsOf({ ...production, JWT_SECRET: undefined })).toEqual([expect.stringMatching(/^AUTH_MODE: /)]);
  });

  it.each([
    ["AUTH_MODE=gateway alone", { JWT_SECRET: undefined, AUTH_MODE: "gateway" }],
    ["AUTH_MODE=gateway next to a JWT key", { AUTH_MODE: "gateway" }],
  ])("refuses gateway mode without GATEWAY_SECRET (%s)", (_what, change) => {
    expect(problemsOf({ ...production, ...change })).toEqual([expect.stringMatching(/^GATEWAY_SECRET: /)]);
  });

  it("lists a missing Redis and missing authentication together", () => {
    const named = problemsOf({ NODE_ENV: "production" }).map((line) => line.slice(0, line.indexOf(":")));

    expect(named.sort()).toEqual(["AUTH_MODE", "REDIS_URL"]);
  });
});

describe("Redis: one of REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS with REDIS_SENTINEL_NAME", () => {
  it("reads the Cluster seed nodes, spaces around commas ignored", () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: "redis-a:7000, 10.0.0.2:7001 ,[::1]:7002" });

    expect(config.redisCluster).toEqual([
      { host: "redis-a", port: 7000 },
      { host: "10.0.0.2", port: 7001 },
      { host: "::1", port: 7002 },
    ]);
    expect(config).toMatchObject({ redisUrl: undefined, redisSentinel: undefined });
    expect(Object.isFrozen(config.redisCluster)).toBe(true);
  });

  it("reads the Sentinels and the master name", () => {
    const config = loadConfig({ REDIS_SENTINELS: "s1:26379,s2:26379,s3:26379", REDIS_SENTINEL_NAME: "scs" });

    expect(config.redisSentinel).toEqual({
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26379 },
        { host: "s3", port: 26379 },
      ],
      name: "scs",
    });
    expect(config).toMatchObject({ redisUrl: undefined, redisCluster: undefined });
  });

  it.each([
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis-a" }],
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis-a:7000,redis-b" }],
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis-a:0" }],
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis-a:70000" }],
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis-a:7000,,redis-b:7001" }],
    ["REDIS_CLUSTER_NODES", { REDIS_CLUSTER_NODES: "redis://redis-a:7000" }],
    ["REDIS_SENTINELS", { REDIS_SENTINELS: "s1:26379;s2:26379", REDIS_SENTINEL_NAME: "scs" }],
    ["REDIS_SENTINEL_NAME", { REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "my master" }],
    ["REDIS_SENTINEL_NAME", { REDIS_SENTINELS: "s1:26379" }],
    ["REDIS_SENTINELS", { REDIS_SENTINEL_NAME: "scs" }],
  ])("refuses a bad %s with one line naming it: %j", (name, env) => {
    const problems = problemsOf(env);

    expect(problems).toEqual([expect.stringMatching(new RegExp(`^${name}: \\S`))]);
    expect(problems[0]).not.toContain("\n");
  });

  it.each([
    [{ REDIS_URL: "redis://r:6379", REDIS_CLUSTER_NODES: "a:7000" }, "REDIS_URL and REDIS_CLUSTER_NODES"],
    [
      { REDIS_URL: "redis://r:6379", REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_NAME: "m" },
      "REDIS_URL and REDIS_SENTINELS",
    ],
    [
      { REDIS_CLUSTER_NODES: "a:7000", REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_NAME: "m" },
      "REDIS_CLUSTER_NODES and REDIS_SENTINELS",
    ],
  ])("refuses two kinds of Redis at once: %j", (env, named) => {
    const problems = problemsOf(env);

    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS");
    expect(problems[0]).toContain(named);
  });

  it.each([
    ["a Cluster", { REDIS_URL: undefined, REDIS_CLUSTER_NODES: "a:7000,b:7000" }],
    ["Sentinels", { REDIS_URL: undefined, REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_NAME: "scs" }],
  ])("lets production start with %s instead of REDIS_URL", (_what, change) => {
    expect(loadConfig({ ...production, ...change }).production).toBe(true);
  });
});

describe("CORS_ORIGINS: comma-separated exact origins, spaces around commas ignored", () => {
  it("splits the list and trims the spaces around each origin", () => {
    const config = loadConfig({ CORS_ORIGINS: " https://app.example , http://localhost:3000,https://x.example:8443 " });

    expect(config.corsOrigins).toEqual(["https://app.example", "http://localhost:3000", "https://x.example:8443"]);
  });

  it("drops empty entries", () => {
    expect(loadConfig({ CORS_ORIGINS: "https://app.example,, ," }).corsOrigins).toEqual(["https://app.example"]);
  });

  it("allows any origin by default outside production and none in production", () => {
    expect(loadConfig({}).corsOrigins).toBe("any");
    expect(loadConfig(production).corsOrigins).toEqual([]);
  });

  it("uses the list in production when one is given", () => {
    expect(loadConfig({ ...production, CORS_ORIGINS: "https://app.example" }).corsOrigins).toEqual([
      "https://app.example",
    ]);
  });
});

describe("INTROSPECTION: false in production, else true, unless set", () => {
  it.each([
    ["development", undefined, true],
    ["test", undefined, true],
    ["production", undefined, false],
    ["development", "false", false],
    ["production", "true", true],
  ])("NODE_ENV=%s, INTROSPECTION=%s: %s", (nodeEnv, introspection, expected) => {
    const env = nodeEnv === "production" ? { ...production } : { NODE_ENV: nodeEnv };

    expect(loadConfig({ ...env, INTROSPECTION: introspection }).introspection).toBe(expected);
  });
});

describe("configuration errors never echo credentials", () => {
  it.each([
    ["REDIS_URL", "http://user:hunter2@example.test"],
    ["JWKS_URL", "ftp://hunter2"],
  ])("does not print the bad value of %s", (name, value) => {
    let message = "";
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(`${name}:`);
    expect(message).not.toContain("hunter2");
  });
});

describe("Managed Redis: TLS and credentials in every mode", () => {
  let certificates: TestCertificates;
  let dir: string;
  beforeAll(() => {
    certificates = makeTestCertificates();
    dir = mkdtempSync(join(tmpdir(), "scs-config-"));
  });
  afterAll(() => {
    certificates.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const cluster = { REDIS_CLUSTER_NODES: "a:7000" };
  const sentinels = { REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_NAME: "scs" };

  it("takes TLS and the user from a rediss:// URL, and trusts REDIS_TLS_CA_FILE's CA for it", () => {
    const config = loadConfig({
      REDIS_URL: "rediss://scs:pw@redis.example:6380",
      REDIS_TLS_CA_FILE: certificates.caFile,
    });

    expect(config.redisSecurity).toEqual({ tls: { ca: certificates.ca.trim() } });
    expect(Object.isFrozen(config.redisSecurity)).toBe(true);
    expect(loadConfig({ REDIS_URL: "rediss://redis.example" }).redisSecurity).toEqual({ tls: {} });
    expect(loadConfig({ REDIS_URL: "redis://redis.example" }).redisSecurity).toEqual({});
  });

  it("applies REDIS_USERNAME and REDIS_PASSWORD to a URL without credentials, and REDIS_TLS when it agrees", () => {
    const config = loadConfig({
      REDIS_URL: "rediss://redis.example",
      REDIS_USERNAME: "scs",
      REDIS_PASSWORD: "pw",
      REDIS_TLS: "true",
    });

    expect(config.redisSecurity).toEqual({ username: "scs", password: "pw", tls: {} });
  });

  it("reads TLS, the CA and the credentials for a Cluster", () => {
    const config = loadConfig({
      ...cluster,
      REDIS_USERNAME: "scs",
      REDIS_PASSWORD: "pw",
      REDIS_TLS: "true",
      REDIS_TLS_CA_FILE: certificates.caFile,
    });

    expect(config.redisSecurity).toEqual({ username: "scs", password: "pw", tls: { ca: certificates.ca.trim() } });
  });

  it("reads the Sentinels' own credentials beside the data nodes'", () => {
    const config = loadConfig({
      ...sentinels,
      REDIS_PASSWORD: "pw",
      REDIS_TLS: "true",
      REDIS_SENTINEL_USERNAME: "scs-sentinel",
      REDIS_SENTINEL_PASSWORD: "spw",
    });

    expect(config.redisSecurity).toEqual({
      password: "pw",
      tls: {},
      sentinelUsername: "scs-sentinel",
      sentinelPassword: "spw",
    });
  });

  it("keeps every certificate of a CA bundle and nothing else from the file", () => {
    const other = readFileSync(certificates.otherCaFile, "utf8");
    const bundle = file("bundle.pem", `# comment\n${certificates.ca}\n${other}`);

    const config = loadConfig({ ...cluster, REDIS_TLS: "true", REDIS_TLS_CA_FILE: bundle });

    expect(config.redisSecurity.tls?.ca).toBe(`${certificates.ca.trim()}\n${other.trim()}`);
  });

  it.each([
    ["REDIS_TLS", { ...cluster, REDIS_TLS: "yes" }, /must be "true" or "false"/],
    [
      "REDIS_TLS_CA_FILE",
      { ...cluster, REDIS_TLS: "true", REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" },
      /cannot be read \(ENOENT\)/,
    ],
    ["REDIS_TLS_CA_FILE", { ...cluster, REDIS_TLS: "true", REDIS_TLS_CA_FILE: "/" }, /cannot be read \(EISDIR\)/],
    [
      "REDIS_TLS_CA_FILE",
      { ...cluster, REDIS_TLS: "true", REDIS_TLS_CA_FILE: "not-pem.txt" },
      /must hold PEM certificates/,
    ],
    [
      "REDIS_TLS_CA_FILE",
      { ...cluster, REDIS_TLS: "true", REDIS_TLS_CA_FILE: "broken.pem" },
      /must hold PEM certificates/,
    ],
    ["REDIS_TLS_CA_FILE", { ...cluster, REDIS_TLS_CA_FILE: "ca" }, /TLS is off/],
    ["REDIS_TLS_CA_FILE", { REDIS_URL: "redis://r:6379", REDIS_TLS_CA_FILE: "ca" }, /TLS is off/],
    ["REDIS_TLS", { REDIS_URL: "rediss://r:6379", REDIS_TLS: "false" }, /contradicts REDIS_URL/],
    ["REDIS_TLS", { REDIS_URL: "redis://r:6379", REDIS_TLS: "true" }, /contradicts REDIS_URL/],
    ["REDIS_PASSWORD", { REDIS_URL: "redis://:pw@r:6379", REDIS_PASSWORD: "pw2" }, /credentials already/],
    ["REDIS_USERNAME", { REDIS_URL: "redis://u:pw@r:6379", REDIS_USERNAME: "v" }, /credentials already/],
    ["REDIS_URL", { REDIS_URL: "redis://u@r:6379" }, /user name but no password/],
    ["REDIS_USERNAME", { ...cluster, REDIS_USERNAME: "scs" }, /needs REDIS_PASSWORD/],
    ["REDIS_SENTINEL_USERNAME", { ...sentinels, REDIS_SENTINEL_USERNAME: "s" }, /needs REDIS_SENTINEL_PASSWORD/],
    ["REDIS_SENTINEL_PASSWORD", { ...cluster, REDIS_SENTINEL_PASSWORD: "spw" }, /only for Sentinels/],
    ["REDIS_PASSWORD", { REDIS_PASSWORD: "pw" }, /no Redis is configured/],
    ["REDIS_TLS", { REDIS_TLS: "true" }, /no Redis is configured/],
  ])("refuses a bad %s with one line naming it: %j", (name, env, message) => {
    file("not-pem.txt", "just text\n");
    file("broken.pem", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    file("ca", certificates.ca);
    const resolved = Object.fromEntries(
      Object.entries(env).map(([key, value]) =>
        key === "REDIS_TLS_CA_FILE" && !value.startsWith("/") ? [key, join(dir, value)] : [key, value],
      ),
    );

    const problems = problemsOf(resolved);

    expect(problems).toEqual([expect.stringMatching(new RegExp(`^${name}: `))]);
    expect(problems[0]).toMatch(message);
  });

  it("never echoes a password, whatever else is wrong", () => {
    const problems = problemsOf({
      REDIS_URL: "rediss://scs:hunter2@r:6379",
      REDIS_PASSWORD: "hunter2-too",
      REDIS_TLS: "false",
      REDIS_SENTINEL_PASSWORD: "hunter2-sentinel",
      REDIS_SENTINEL_USERNAME: "hunter2-user",
    });

    expect(problems.length).toBeGreaterThanOrEqual(3);
    expect(problems.join("\n")).not.toContain("hunter2");
  });
});

describe("The README's configuration table", () => {
  it("names every variable the configuration reads", () => {
    const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
    const section = readme.slice(
      readme.indexOf("## Configuration"),
      readme.indexOf("\n## ", readme.indexOf("## Configuration") + 1),
    );
    const tableRows = section.split("\n").filter((line) => line.startsWith("| `"));
    const named = new Set(tableRows.flatMap((row) => [...row.split("|")[1].matchAll(/`([A-Z_]+)`/g)].map((m) => m[1])));

    expect(CONFIG_VARIABLES.filter((name) => !named.has(name))).toEqual([]);
  });
});

describe("Tracing comes from OpenTelemetry's standard variables", () => {
  it("is off (no SDK) without an OTLP endpoint", () => {
    expect(loadConfig({}).tracing).toBeUndefined();
  });

  it("sends to <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces, or to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).tracing).toEqual({
      tracesUrl: "http://collector:4318/v1/traces",
      scheduleDelayMs: 5000,
    });
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:9999/in",
        OTEL_BSP_SCHEDULE_DELAY: "250",
      }).tracing,
    ).toEqual({ tracesUrl: "http://traces:9999/in", scheduleDelayMs: 250 });
  });

  it("stays off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none", () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    expect(loadConfig({ ...endpoint, OTEL_SDK_DISABLED: "true" }).tracing).toBeUndefined();
    expect(loadConfig({ ...endpoint, OTEL_TRACES_EXPORTER: "none" }).tracing).toBeUndefined();
  });
});
