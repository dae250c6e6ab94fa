import type { Redis } from "ioredis";
import pino from "pino";
import type { ServiceUnavailableError } from "../../src/errors/errors";
import { bounded, createRedisClient, whenReady } from "../../src/store/redis/redis-client";
import { toStoreError } from "../../src/store/redis/redis-errors";
import { eventually, timed } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";

// createRedisClient's default command timeout, and room for a loaded machine. Counted from when the call is
// issued, a call fails after ~1 s; counted from when ioredis writes it, a call queued behind a held-back pipeline
// would fail after ~2 s.
const COMMAND_TIMEOUT_MS = 1000;
const BOUND_MS = 1500;

describe("fault: auto-pipelining behind a pipeline that Redis holds back", () => {
  let redis: RedisProcess;
  let client: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    client = createRedisClient({ url: redis.url, logger: pino({ level: "silent" }) }) as Redis;
    if (!(await whenReady(client, 5000))) throw new Error("Redis did not become ready");
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it("a call issued while the previous pipeline awaits its answer fails within one command timeout of being issued (a write with outcomeUnknown) and a timed-out write still lands, once", async () => {
    expect(client.options.enableAutoPipelining).toBe(true);
    const key = `autopipe:${Date.now()}`;
    // What the stores do with each call: bound it, then map its failure.
    const outcome = (call: Promise<unknown>, kind: "read" | "write") =>
      timed(() =>
        bounded(client, call)
          .catch(toStoreError(kind))
          .then(
            () => "ok",
            (error: ServiceUnavailableError) => error.extensions,
          ),
      );

    await redis.admin.client("PAUSE", 3000, "WRITE");
    const first = outcome(client.incr(key), "write");
    // The first pipeline is written and unanswered: ioredis holds what follows in the next pipeline until the first
    // one is answered or times out, and arms their own timeouts only when it writes them.
    await eventually("the first pipeline is written", async () => client.commandQueue.length === 1, 2000, 5);
    const [behind, read] = await Promise.all([outcome(client.incr(key), "write"), outcome(client.get(key), "read")]);

    const unknown = { code: "SERVICE_UNAVAILABLE", outcomeUnknown: true };
    expect((await first).result).toEqual(unknown);
    expect(behind.result).toEqual(unknown);
    expect(behind.elapsedMs).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 5);
    expect(behind.elapsedMs).toBeLessThan(BOUND_MS);
    expect(read.result).toEqual({ code: "SERVICE_UNAVAILABLE", outcomeUnknown: false });
    expect(read.elapsedMs).toBeLessThan(BOUND_MS);

    // "outcomeUnknown: true" is exact: the write that timed out behind the first pipeline is sent afterwards and
    // applied when the pause ends. ioredis never resends, so each increment lands once.
    await eventually("both increments land", async () => (await redis.admin.get(key)) === "2", 5000);
    await eventually("the client's queue drains", async () => client.commandQueue.length === 0, 5000);
    expect(await redis.admin.get(key)).toBe("2");
  });
});

describe("Cluster clients do not auto-pipeline", () => {
  // ioredis pipelines group every slot of a node; when one slot moves, such a pipeline hands MOVED / ASK back to the
  // caller instead of following it (Pipeline.js, fillResult): see createRedisClient.
  it("leaves enableAutoPipelining off", () => {
    // Nothing listens on port 1: the client is only inspected, never used.
    const cluster = createRedisClient({
      clusterNodes: [{ host: "127.0.0.1", port: 1 }],
      logger: pino({ level: "silent" }),
    });
    try {
      expect(cluster.options.enableAutoPipelining).toBeFalsy();
    } finally {
      cluster.disconnect();
    }
  });
});
