import { randomUUID } from "node:crypto";
import { startRedis, type RedisProcess } from "./redis-server";
import type { Redis } from "ioredis";
import pino from "pino";
import { createLogger } from "../../src/logger";
import { createAuthenticator } from "../../src/auth/authenticator";
import { loadConfig, type Config } from "../../src/config";
import type { OperationRule } from "../../src/execution/operation-rule";
import { createServer, type SessionContextServer } from "../../src/server";
import type { SessionStore } from "../../src/sessions/session-store";
import { createBackend, type Backend } from "../../src/store/backend";

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: {
    data?: T | null;
    errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
  };
}

export interface TestServer {
  readonly url: string;
  readonly config: Config;
  readonly store: SessionStore;
  /** The store with the tenant settings and cleanup schedule beside it. */
  readonly backend: Backend;
  /** The server's own ioredis client (undefined with the embedded store): for watching its command queue. */
  readonly redis?: Redis;
  /** POSTs a GraphQL request as JSON. */
  post<T = Record<string, unknown>>(
    body: { query: string; variables?: Record<string, unknown>; operationName?: string },
    headers?: Record<string, string>,
  ): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

/**
 * The real server (createServer), listening on a free loopback port, with the Redis store when `redisUrl` is
 * given and the embedded store otherwise. `env` is the environment its configuration is parsed from.
 */
export async function startTestServer(
  options: {
    redisUrl?: string;
    env?: Record<string, string>;
    /** When given, every log line the server writes is parsed and pushed here (set LOG_LEVEL in env). */
    logs?: Record<string, unknown>[];
    /** Rules the server runs after its own, on every execution path. */
    extraRules?: OperationRule[];
    /** Serve at once, as main.ts does after its wait, when Redis is not ready (default: fail the start). */
    redisMayFail?: boolean;
  } = {},
): Promise<TestServer> {
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    ...options.env,
  });
  const logs = options.logs;
  const logger = logs
    ? createLogger(config.logLevel, { write: (line: string) => void logs.push(JSON.parse(line)) })
    : pino({ level: config.logLevel });
  // Wired as main.ts wires it: the server's own client and a read connection, or the embedded store.
  const backend = await createBackend(config, logger);
  // A URL gives a single-node client (a Cluster comes only from seed nodes).
  const redis = backend.redis as Redis | undefined;
  // The URL may carry a password: never in a message.
  if (redis && redis.status !== "ready" && !options.redisMayFail)
    throw new Error("Redis at REDIS_URL did not become ready");
  const store = backend.sessions;
  const server: SessionContextServer = await createServer({
    config,
    logger,
    backend,
    authenticator: createAuthenticator(config.auth),
    extraRules: options.extraRules,
  });
  const address = await server.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    config,
    store,
    backend,
    redis,
    async post(body, headers = {}) {
      const response = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
      return { status: response.status, headers: response.headers, body: (await response.json()) as never };
    },
    async close() {
      await server.stop();
      await backend.changes.close();
      await store.close();
    },
  };
}

/** Gateway-mode identity headers for a caller. */
export function gatewayHeaders(tenantId: string, userId: string, roles: string[] = []): Record<string, string> {
  return { "x-tenant-id": tenantId, "x-user-id": userId, ...(roles.length ? { "x-roles": roles.join(",") } : {}) };
}

/** A tenant id no other test uses, so tests never need to flush shared state. */
export function freshTenant(label = "tenant"): string {
  return `${label}-${randomUUID()}`;
}

/**
 * Registers hooks that start a real redis-server and the server on it before the enclosing block's tests and stop
 * both after them; `started` receives the two once they run.
 */
export function useServerOnRedis(
  started: (running: { redis: RedisProcess; server: TestServer }) => void,
  options: { env?: Record<string, string> } = {},
): void {
  let running: { redis: RedisProcess; server: TestServer } | undefined;
  beforeAll(async () => {
    const redis = await startRedis();
    running = { redis, server: await startTestServer({ redisUrl: redis.url, env: options.env }) };
    started(running);
  });
  afterAll(async () => {
    await running?.server.close();
    await running?.redis.stop();
  });
}

/** The two stores every API rule is checked on: a real Redis of the block's own, and the embedded store. */
export const ON_EACH_STORE = [
  ["Redis", true],
  ["the embedded store", false],
] as const;

/**
 * useServerOnRedis for a block run on each store (ON_EACH_STORE): on Redis when `onRedis`, else on the embedded
 * store (`redis` undefined).
 */
export function useServerOnStore(
  onRedis: boolean,
  started: (running: { redis: RedisProcess | undefined; server: TestServer }) => void,
): void {
  if (onRedis) return useServerOnRedis(started);
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer({});
    started({ redis: undefined, server });
  });
  afterAll(async () => {
    await server?.close();
  });
}
