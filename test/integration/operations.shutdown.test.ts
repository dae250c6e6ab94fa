import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { buildServer, removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";

/**
 * Graceful shutdown: SIGTERM while requests are in flight. The server stops accepting, lets every request it has
 * accepted finish, stops the scheduler, closes Redis and exits 0.
 */
describe("graceful shutdown on SIGTERM", () => {
  let redis: RedisProcess;
  let server: ServerProcess;

  beforeAll(async () => {
    redis = await startRedis();
    server = await startServerProcess({ REDIS_URL: redis.url });
  });
  afterAll(async () => {
    await server.stop("SIGKILL");
    await redis.stop();
  });

  const headers = { "content-type": "application/json", "x-tenant-id": "shutdown-tenant", "x-user-id": "u" };
  const inFlight = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/^graphql_requests_in_flight (\S+)$/m.exec(text)?.[1] ?? NaN);
  };

  it("finishes every in-flight request, then exits 0", async () => {
    const write = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        query: `mutation { storeSessionContext(input: {sessionId: "s", conversationState: {a: 1}}) { version } }`,
      }),
    });
    expect(((await write.json()) as { data: unknown }).data).toEqual({ storeSessionContext: { version: 1 } });

    // Hold Redis so that the requests below are certainly in the server's hands when SIGTERM arrives, and let it
    // answer once the server says it is shutting down. The hold has to stay under the server's 1 s command timeout
    // (a request held longer answers SERVICE_UNAVAILABLE): it ends at that event, not after a fixed time that a
    // loaded machine may need most of just to get the 40 requests to the server.
    await redis.freeze();
    const requests = Array.from({ length: 40 }, () =>
      fetch(`${server.url}/graphql`, {
        method: "POST",
        headers,
        body: JSON.stringify({ query: `{ sessionContext(sessionId: "s") { version conversationState } }` }),
      }).then(async (response) => ({
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
      })),
    );
    await pollUntil("the 40 requests are in the server's hands", inFlight, (count) => count >= 40, {
      timeoutMs: 5000,
      intervalMs: 10,
    });

    const exitCode = server.stop("SIGTERM");
    await server.waitForLine((line) => line.msg === "shutting down", 5000);
    await redis.thaw();
    const answers = await Promise.all(requests);
    for (const answer of answers) {
      expect(answer).toEqual({
        status: 200,
        body: { data: { sessionContext: { version: 1, conversationState: { a: 1 } } } },
      });
    }
    expect(await exitCode).toBe(0);
    expect(server.lines.some((line) => line.msg === "shutting down" && line.signal === "SIGTERM")).toBe(true);
    await expect(fetch(`${server.url}/health/live`)).rejects.toThrow();
  }, 30_000);
});

describe("a bad configuration stops the start", () => {
  afterAll(() => removeBuild());

  it("prints one JSON line naming each bad variable and exits non-zero, before listening", () => {
    const main = join(buildServer(), "main.js");
    const result = spawnSync(process.execPath, [main], {
      env: { PATH: process.env.PATH, NODE_ENV: "production", PORT: "http", MAX_TTL_SECONDS: "-5", LOG_LEVEL: "loud" },
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(result.status).toBe(2);
    const lines = result.stderr
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { level: string; msg: string });
    const named = (variable: string) => lines.filter((l) => l.level === "fatal" && l.msg.includes(`${variable}:`));
    for (const variable of ["PORT", "MAX_TTL_SECONDS", "LOG_LEVEL", "REDIS_URL", "AUTH_MODE"]) {
      expect(named(variable)).toHaveLength(1);
    }
    expect(result.stdout).toBe("");
  });
});
