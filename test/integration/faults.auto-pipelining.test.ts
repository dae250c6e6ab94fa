import { Cluster, type Redis } from "ioredis";
import pino from "pino";
import type { ServiceUnavailableError } from "../../src/errors/errors";
import { bounded, createReadConnection, createRedisClient, whenReady } from "../../src/store/redis/redis-client";
import { toStoreError } from "../../src/store/redis/redis-errors";
import { timed } from "../helpers/api";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";

// createRedisClient's default command timeout, and room for a loaded machine. Counted from when the call is
// issued, a call fails after ~1 s; counted from when ioredis writes it, a call queued behind a held-back pipeline
// would fail after ~2 s.
const COMMAND_TIMEOUT_MS = 1000;
const BOUND_MS = 1500;

describe("fault: the auto-pipelined read connection behind a pipeline that Redis holds back", () => {
  const logger = pino({ level: "silent" });
  let redis: RedisProcess;
  let client: Redis;
  let reads: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    client = createRedisClient({ url: redis.url, logger }) as Redis;
    reads = createReadConnection(client, logger) as Redis;
    for (const c of [client, reads]) if (!(await whenReady(c, 5000))) throw new Error("Redis did not become ready");
  });
  afterAll(async () => {
    client?.disconnect();
    reads?.disconnect();
    await redis?.stop();
  });

  it("auto-pipelines the reads only: the client for writes sends each command as it comes", () => {
    expect(reads.options.enableAutoPipelining).toBe(true);
    expect(client.options.enableAutoPipelining).toBeFalsy();
    expect(reads).not.toBe(client);
  });

  it("a read issued while the previous pipeline awaits its answer fails within one command timeout of being issued", async () => {
    const key = `autopipe:${Date.now()}`;
    await redis.admin.set(key, "stored");
    // What the store does with each read: bound it, then map its failure.
    const outcome = (call: Promise<unknown>) =>
      timed(() =>
        bounded(reads, call)
          .catch(toStoreError("read"))
          .then(
            (value) => value,
            (error: ServiceUnavailableError) => error.extensions,
          ),
      );

    await redis.admin.client("PAUSE", 3000, "ALL");
    const first = outcome(reads.get(key));
    // The first pipeline is written and unanswered: ioredis holds what follows in the next pipeline until the first
    // one is answered or times out, and arms their own timeouts only when it writes them.
    await pollUntil(
      "the first pipeline is written",
      () => reads.commandQueue.length,
      (queued) => queued === 1,
      { timeoutMs: 2000, intervalMs: 5 },
    );
    const behind = await outcome(reads.get(key));

    const unavailable = { code: "SERVICE_UNAVAILABLE", outcomeUnknown: false };
    expect((await first).result).toEqual(unavailable);
    expect(behind.result).toEqual(unavailable);
    expect(behind.elapsedMs).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 5);
    expect(behind.elapsedMs).toBeLessThan(BOUND_MS);

    // Once the pause ends the connection serves again, by itself.
    await redis.admin.client("UNPAUSE");
    await pollUntil(
      "the read connection's queue drains",
      () => reads.commandQueue.length,
      (queued) => queued === 0,
      { timeoutMs: 5000 },
    );
    expect((await outcome(reads.get(key))).result).toBe("stored");
  });
});

describe("Cluster clients do not auto-pipeline", () => {
  // ioredis pipelines group every slot of a node; when one slot moves, such a pipeline hands MOVED / ASK back to the
  // caller instead of following it (Pipeline.js, fillResult): see createReadConnection.
  it("reads go through the cluster client itself, which leaves enableAutoPipelining off", () => {
    // Nothing listens on port 1: the client is only inspected, never used.
    const cluster = createRedisClient({
      clusterNodes: [{ host: "127.0.0.1", port: 1 }],
      logger: pino({ level: "silent" }),
    });
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      expect(createReadConnection(cluster, pino({ level: "silent" }))).toBe(cluster);
      expect(cluster.options.enableAutoPipelining).toBeFalsy();
    } finally {
      cluster.disconnect();
    }
  });
});
