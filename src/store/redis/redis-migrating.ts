import { setTimeout as sleep } from "node:timers/promises";
import { Cluster, Command, type Redis } from "ioredis";
import { bounded, type RedisClient } from "./redis-client";

/**
 * How long a command that Redis Cluster keeps answering with TRYAGAIN (its keys split between two masters while
 * their slot migrates) is tried again, counted from the first attempt; then it fails as it would have anyway
 * (SERVICE_UNAVAILABLE, nothing written). It keeps a request well inside the fail-fast bound of about 1 s.
 */
export const MIGRATION_RETRY_BUDGET_MS = 800;

/** Pause between two such attempts: a batch of `MIGRATE … KEYS` takes about a millisecond. */
const MIGRATION_RETRY_DELAY_MS = 25;

// A redirection reply, or ioredis giving up after following too many of them: each means the command did not run.
const REDIRECTED =
  /^(TRYAGAIN|ASK|MOVED)\b|Too many Cluster redirections\. Last error: (ReplyError: )?(TRYAGAIN|ASK|MOVED)\b/;

function redirected(error: unknown): boolean {
  return error instanceof Error && REDIRECTED.test(error.message);
}

/**
 * Runs `call` again while it fails with a redirection that means "not run, try again" — on a Cluster, a multi-key
 * command or script whose keys are on both sides of a slot migration gets TRYAGAIN, and ioredis gives up after
 * `maxRedirections` — for at most MIGRATION_RETRY_BUDGET_MS from the first attempt. Safe for writes: a TRYAGAIN,
 * ASK or MOVED reply means the command did not run. Any other failure is rethrown at once.
 */
export async function retryWhileMigrating<T>(call: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + MIGRATION_RETRY_BUDGET_MS;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!redirected(error) || performance.now() + MIGRATION_RETRY_DELAY_MS >= deadline) throw error;
      await sleep(MIGRATION_RETRY_DELAY_MS);
    }
  }
}

/**
 * Reads `keys` — keys of one tenant, so of one hash slot — in one MGET, bounded by the command timeout. The values
 * come back as the bytes Redis holds (never decoded: a stored document's slices go into answers as they are).
 *
 * On a Cluster the MGET goes straight to the connection of the master the client's slot map names, so that a
 * redirection comes back to us at once: through the Cluster client, ioredis would retry a TRYAGAIN (the keys split
 * between the migrating and the importing master) on a random node, 50 ms apart, up to its redirection limit, and
 * then fail. Any redirection (TRYAGAIN, ASK, MOVED) splits the batch instead: one GET per key through the Cluster
 * client, each following its own ASK or MOVED, which always works while a slot moves. Two round trips, only then.
 */
export async function readKeys(redis: RedisClient, keys: readonly string[]): Promise<(Buffer | null)[]> {
  if (!(redis instanceof Cluster)) return bounded(redis, redis.mgetBuffer(keys as string[]));
  if (keys.length === 1) return [await redis.getBuffer(keys[0])];
  try {
    return await (slotMaster(redis, keys[0]) ?? redis).mgetBuffer(keys as string[]);
  } catch (error) {
    if (!redirected(error)) throw error;
    return perKey(redis, keys);
  }
}

function perKey(cluster: Cluster, keys: readonly string[]): Promise<(Buffer | null)[]> {
  return Promise.all(keys.map((key) => cluster.getBuffer(key)));
}

/** The ready connection to the master that serves `key`'s slot in the client's slot map, if it has one. */
function slotMaster(cluster: Cluster, key: string): Redis | undefined {
  const address = cluster.slots[new Command("get", [key]).getSlot() as number]?.[0];
  if (address === undefined) return undefined;
  const node = cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === address);
  return node?.status === "ready" ? node : undefined;
}
