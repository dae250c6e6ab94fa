import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { connectionProblem, type Attempt } from "./redis-connection-problem";

/**
 * The client every Redis store takes in its constructor: one Redis (plain or Sentinel-managed) or a Redis Cluster.
 * The stores use only commands whose keys share one slot (a tenant's `{<tenant>}` hash tag) or single-key commands,
 * so the same code runs on both.
 */
export type RedisClient = Redis | Cluster;

/** A `host:port` of a Cluster node or a Sentinel. */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** Where the data lives: exactly one of a URL, Cluster seed nodes, or Sentinels with the monitored master's name. */
export type RedisTarget =
  | { readonly url: string }
  | { readonly clusterNodes: readonly RedisAddress[] }
  | { readonly sentinels: readonly RedisAddress[]; readonly sentinelName: string };

/**
 * TLS and credentials (Config.redisSecurity), the same shape for the three kinds of target. With a URL, `rediss://`
 * and the URL's user and password count as well (the configuration never lets the two disagree).
 */
export interface RedisSecurity {
  /** ACL user of the data nodes; unset: the `default` user. */
  readonly username?: string;
  readonly password?: string;
  /** TLS to the data nodes and to the Sentinels; `ca`: PEM certificates trusted instead of Node's bundled CAs. */
  readonly tls?: { readonly ca?: string };
  /** Credentials for the Sentinels themselves (they have users of their own). */
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
}

/** Options of the Redis client factory. */
export type RedisClientOptions = RedisTarget & {
  /** TLS and credentials; default: none (plain TCP, no AUTH). */
  security?: RedisSecurity;
  /** Longest wait for one command before it fails with SERVICE_UNAVAILABLE. Default 1000 ms. */
  commandTimeoutMs?: number;
  /** Longest wait for a connection attempt. Default 1000 ms. */
  connectTimeoutMs?: number;
  logger: Logger;
};

/** Reconnect forever, backing off from 100 ms to at most 1 s between attempts. */
const reconnectDelay = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 5), 1000);

/**
 * Creates the ioredis client the way an API server needs it: fail fast instead of queueing.
 *
 * - No offline queue: while disconnected, commands fail at once instead of piling up in memory.
 * - No per-request retries and no resending after a reconnect: a merge is not idempotent, so a command that may
 *   have run is never sent twice; the caller gets SERVICE_UNAVAILABLE and decides.
 * - A command timeout bounds every call, including against a paused or overloaded Redis.
 * - Reconnects forever with a capped backoff, so the server recovers by itself when Redis is back.
 *
 * Cluster: ioredis follows MOVED and ASK and retries TRYAGAIN / CLUSTERDOWN / a node not connected after a short
 * delay — replies that mean the command did not run, so following them never runs a write twice. The number of such
 * redirections is capped so that a request stays bounded (about 1 s of redirections plus one command timeout).
 * Node connections reconnect on their own, so a command in flight when a node dies fails as "may have run"
 * (ioredis's MaxRetriesPerRequestError), never as a retryable "connection closed".
 *
 * Sentinel: the client asks the Sentinels for the current master on every (re)connect and listens for
 * `+switch-master` (failoverDetector), so it moves to a promoted replica by itself.
 *
 * TLS and credentials (`security`) apply to every connection the client opens: each data node, the Cluster's nodes
 * as it discovers them, and the Sentinels (TLS alike, credentials their own). A refused password or an untrusted
 * certificate is one more reason to reconnect: the client keeps trying with the same backoff, so fixing the ACL user
 * or the certificate on the Redis side is enough; the log says what is wrong once (logEvents).
 *
 * No auto-pipelining on this client: it carries the writes (scripts), and ioredis keeps one auto-pipeline in flight
 * per connection, so a batch of merges would wait for the previous batch's whole answer. Reads get a connection of
 * their own that does auto-pipeline (createReadConnection).
 */
export function createRedisClient(options: RedisClientOptions): RedisClient {
  const commandTimeout = options.commandTimeoutMs ?? 1000;
  const connectTimeout = options.connectTimeoutMs ?? 1000;
  const { username, password, tls, sentinelUsername, sentinelPassword } = options.security ?? {};
  // Node's tls.connect options; no `ca`: Node's bundled CAs.
  const tlsOptions = tls && { ca: tls.ca };
  const failFast = {
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout,
    connectTimeout,
    username,
    password,
    tls: tlsOptions,
    // CLIENT SETINFO only labels the connection in CLIENT LIST. The least-privilege ACL user may not run it (and
    // Redis 7.0 does not know it): each refusal would be one more entry in ACL LOG, on every connect.
    disableClientInfo: true,
  } satisfies RedisOptions;

  let client: RedisClient;
  if ("clusterNodes" in options) {
    client = new Cluster(
      options.clusterNodes.map(({ host, port }) => ({ host, port })),
      {
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        clusterNodeRetryStrategy: reconnectDelay,
        scaleReads: "master", // reads must see the write they follow: replicas lag
        maxRedirections: 10,
        retryDelayOnMoved: 0,
        retryDelayOnTryAgain: 50,
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        slotsRefreshTimeout: connectTimeout,
        redisOptions: failFast,
        // With TLS, a seed given by host name keeps that name (the name its certificate is for) instead of being
        // resolved to an address first (the ioredis README's note on ElastiCache with TLS).
        ...(tlsOptions
          ? { dnsLookup: (address: string, done: (error: null, address: string) => void) => done(null, address) }
          : {}),
        lazyConnect: false,
      },
    );
  } else if ("sentinels" in options) {
    client = new Redis({
      ...failFast,
      sentinels: options.sentinels.map(({ host, port }) => ({ host, port })),
      name: options.sentinelName,
      role: "master",
      enableOfflineQueue: false,
      retryStrategy: reconnectDelay,
      sentinelRetryStrategy: reconnectDelay,
      sentinelCommandTimeout: commandTimeout,
      sentinelUsername,
      sentinelPassword,
      // REDIS_TLS means TLS to the Sentinels and to the master they name (ioredis: sentinelTLS and tls).
      enableTLSForSentinelMode: tlsOptions !== undefined,
      sentinelTLS: tlsOptions,
      failoverDetector: true,
      // A demoted master answers writes with READONLY (mapped to SERVICE_UNAVAILABLE, nothing written): reconnect
      // so the next command goes to the master the Sentinels name now. 1 = reconnect without resending.
      reconnectOnError: (error) => (error.message.startsWith("READONLY") ? 1 : false),
      lazyConnect: false,
    });
  } else {
    client = new Redis(options.url, {
      ...failFast,
      enableOfflineQueue: false,
      retryStrategy: reconnectDelay,
      lazyConnect: false,
    });
  }
  logEvents(client, options.logger);
  return client;
}

/**
 * The connection for session reads (MGET). On one Redis or Sentinel: a second connection to the same server, with
 * the same options plus auto-pipelining — the reads that 64 concurrent requests issue in one turn of the event loop
 * leave in one socket write (-9 % of the server's CPU per read), and a write that Redis holds back (CLIENT PAUSE
 * WRITE, a slow script) no longer holds up the reads queued behind it on the same connection. On a Cluster: the
 * client itself (its pipelines group every slot of a node, and a pipeline whose commands got different replies,
 * one slot migrating and the others not, hands MOVED / ASK back to the caller instead of following it:
 * Pipeline.js, fillResult).
 *
 * ioredis keeps one auto-pipeline in flight per connection: commands issued meanwhile wait in the next one until the
 * whole previous one is answered or timed out, and their command timeout starts only when they are written
 * (autoPipelining.js, executeAutoPipeline; Redis.js, sendCommand). Against a paused Redis that is up to two command
 * timeouts, so every call on this connection goes through `bounded`, which counts the timeout from the call.
 */
export function createReadConnection(client: RedisClient, logger: Logger): RedisClient {
  if (client instanceof Cluster) return client;
  const reads = client.duplicate({ enableAutoPipelining: true });
  logEvents(reads, logger.child({ connection: "reads" }), problemLogs.get(client));
  return reads;
}

/**
 * Bounds one call on `redis` by the command timeout, counted from now. With auto-pipelining ioredis arms its own
 * timeout only when it writes the command, which can be up to one command timeout after the call (one pipeline in
 * flight per connection: autoPipelining.js); without auto-pipelining the call is returned as it is. Only the read
 * connection auto-pipelines (createReadConnection), so only reads are bounded here: a read that gives up may still
 * be sent when the previous pipeline is done, and its answer is then dropped.
 */
export function bounded<T>(redis: RedisClient, call: Promise<T>): Promise<T> {
  const timeoutMs =
    redis instanceof Cluster || !redis.options.enableAutoPipelining ? undefined : redis.options.commandTimeout;
  if (timeoutMs === undefined) return call;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("Command timed out (counted from when it was issued; it may still be sent)")),
      timeoutMs,
    );
    call.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Commands on `redis` that Redis has not answered yet: written to a connection and waiting for their reply — those
 * that timed out on our side included, since ioredis keeps each one (and its arguments) until Redis answers or the
 * connection drops — plus those waiting in an auto-pipeline to be written. On a Cluster, the sum over its nodes.
 */
export function unansweredCommands(redis: RedisClient): number {
  if (!(redis instanceof Cluster)) return redis.commandQueue.length + redis.autoPipelineQueueSize;
  let count = redis.autoPipelineQueueSize;
  for (const node of redis.nodes()) count += node.commandQueue.length;
  return count;
}

/**
 * Logs each cause of failing connections once: the first failed attempt, then each change of cause (a wrong
 * password fixed but the certificate still untrusted, say), and again after the connections were ready in between.
 * ioredis reports every failed attempt (every second here); one line per cause is what an operator can act on. The
 * connections of one client (its read connection too) share one log, so a cause is one line, not one per connection.
 */
class ProblemLog {
  private last: string | undefined;
  private lastNode: string | undefined;

  constructor(private readonly logger: Logger) {}

  /** `node`: the Cluster node (`host:port`) the error came from, if it was one. */
  report(error: Error, attempt: Attempt, node?: string): void {
    const problem = connectionProblem(error, attempt);
    if (problem === undefined) return;
    const key = `${problem.kind}:${problem.code}`;
    if (key === this.last) return;
    this.last = key;
    this.lastNode = node;
    this.logger[problem.level](
      { event: "redis.error", problem: problem.kind, code: problem.code, err: problem.detail, node },
      problem.message,
    );
  }

  /** A connection is ready: the next failure is news, unless this is another Cluster node than the failing one. */
  ready(node?: string): void {
    if (node === undefined || node === this.lastNode) this.last = undefined;
  }
}

const problemLogs = new WeakMap<RedisClient, ProblemLog>();

function logEvents(client: RedisClient, logger: Logger, problems = new ProblemLog(logger)): void {
  problemLogs.set(client, problems);
  const tls = Boolean(client instanceof Cluster ? client.options.redisOptions?.tls : client.options.tls);
  client.on("ready", () => {
    problems.ready();
    logger.info({ event: "redis.ready" }, "redis connection ready");
  });
  client.on("error", (error: Error) => problems.report(error, { tls, handshaking: client.status !== "ready" }));
  client.on("end", () => logger.info({ event: "redis.end" }, "redis connection closed"));
  if (client instanceof Cluster) {
    // A node the Cluster client cannot use (its user missing on that node, say) leaves the Cluster ready: its own
    // failed attempts and recovery are what tell.
    client.on("node error", (error: Error, node: string) => {
      const status = client.nodes().find((n) => `${n.options.host}:${n.options.port}` === node)?.status;
      problems.report(error, { tls, handshaking: status !== "ready" }, node);
    });
    client.on("+node", (node: Redis) => {
      node.on("ready", () => problems.ready(`${node.options.host}:${node.options.port}`));
      logger.debug({ event: "redis.node.added", node: `${node.options.host}:${node.options.port}` }, "cluster node");
    });
    client.on("-node", (node: Redis) =>
      logger.info({ event: "redis.node.removed", node: `${node.options.host}:${node.options.port}` }, "cluster node"),
    );
  }
}

/** Resolves true once the client is ready, or false after `timeoutMs` (the client keeps trying either way). */
export function whenReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      resolve(false);
    }, timeoutMs);
    redis.once("ready", onReady);
  });
}

/**
 * Readiness. One Redis (plain or behind Sentinels) serves when it answers PING. A Cluster serves when the client
 * has its slot map and every master it knows answers CLUSTER INFO with `cluster_state:ok` (all slots covered by a
 * reachable master, in that node's view): a PING to one random node would say nothing about the others. Rejects
 * otherwise; every call is bounded by the command timeout.
 */
export async function ping(redis: RedisClient): Promise<void> {
  if (!(redis instanceof Cluster)) {
    await bounded(redis, redis.ping());
    return;
  }
  if (redis.status !== "ready") throw new Error(`cluster client is ${redis.status}`);
  const masters = redis.nodes("master");
  if (masters.length === 0) throw new Error("cluster client knows no master");
  const states = await Promise.allSettled(masters.map((node) => node.cluster("INFO")));
  const failing = states.filter((state) => state.status === "rejected" || !/^cluster_state:ok\r?$/m.test(state.value));
  if (failing.length > 0) {
    // A master that does not answer may have been replaced already: ask for the slot map now rather than at the
    // next periodic refresh (5 s), so readiness and the tenant's commands find the promoted replica sooner.
    redis.refreshSlotsCache();
    throw new Error(`${failing.length} of ${masters.length} cluster masters do not report a cluster that is ok`);
  }
}
