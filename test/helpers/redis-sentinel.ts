import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { pollUntil } from "./poll";
import {
  adminClientOptions,
  exited,
  freePort,
  securityArgs,
  spawnRedis,
  type RedisServerOptions,
} from "./redis-server";
import { tlsServerArgs } from "./tls";

/** Sentinel-managed Redis on loopback for one test file: one master, one replica, three Sentinels. */
export interface RedisSentinelProcess {
  /** The master name the Sentinels monitor. */
  readonly name: string;
  readonly sentinelPorts: readonly number[];
  /** `127.0.0.1:p1,…`: what `REDIS_SENTINELS` takes. */
  readonly sentinelsVariable: string;
  /** The data nodes' ports: [initial master, initial replica]. */
  readonly dataPorts: readonly number[];
  /** An admin client to a data node (its `default` user); closed by `stop()`. */
  node(port: number): Redis;
  /** An admin client to a Sentinel (its `default` user); closed by `stop()`. */
  sentinel(port: number): Redis;
  /** The port of the master the Sentinels name now (asks the first live Sentinel). */
  currentMaster(): Promise<number>;
  /** SIGKILLs a data node (a crash). */
  kill(port: number): Promise<void>;
  /** Stops every process and client and removes the Sentinel config files. */
  stop(): Promise<void>;
}

const NAME = "scs-test";
/** How long a master must stay unreachable before the Sentinels call it down. */
export const DOWN_AFTER_MS = 1000;

function spawnSentinel(configFile: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("redis-server", [configFile, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/Sentinel ID is|\+monitor master/.test(output)) {
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        child.off("exit", onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`sentinel exited with ${code}: ${output.slice(-500)}`));
    child.stdout?.on("data", onData);
    child.stderr?.resume();
    child.once("exit", onExit);
    child.once("error", reject);
  });
}

async function startOnFreePort<T>(start: (port: number) => Promise<T>): Promise<{ port: number; started: T }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      return { port, started: await start(port) };
    } catch (error) {
      if (attempt >= 4) throw error; // the port was taken between freePort() and the bind
    }
  }
}

/** Sentinel-managed Redis with TLS and passwords, as a managed service runs it. */
export interface RedisSentinelOptions extends RedisServerOptions {
  /**
   * The Sentinels' `default` user's password (`requirepass`; they use it with each other too). The data nodes'
   * password is `adminPassword`, which the Sentinels are given (`sentinel auth-pass`). With `tls`, the Sentinels
   * serve TLS only and reach the data nodes and each other over TLS.
   */
  sentinelPassword?: string;
}

/**
 * Starts one master, one replica and three Sentinels, and waits until every Sentinel knows the replica and the
 * other Sentinels.
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelProcess> {
  const dir = mkdtempSync(join(tmpdir(), "scs-sentinel-"));
  const children = new Map<number, ChildProcess>();
  const clients: Redis[] = [];
  const client = (port: number, password = options.adminPassword) => {
    const redis = new Redis({
      host: "127.0.0.1",
      port,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 100,
      ...adminClientOptions({ tls: options.tls, adminPassword: password }),
    });
    redis.on("error", () => undefined); // a killed node: the test asks for it on purpose
    clients.push(redis);
    return redis;
  };
  const stop = async () => {
    for (const redis of clients) redis.disconnect();
    await Promise.all([...children.values()].map((child) => exited(child, "SIGTERM")));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const master = await startOnFreePort((port) => spawnRedis(port, securityArgs(options, port)));
    children.set(master.port, master.started);
    const replica = await startOnFreePort((port) =>
      spawnRedis(port, [...securityArgs(options, port), "--replicaof", "127.0.0.1", String(master.port)]),
    );
    children.set(replica.port, replica.started);
    const replicaClient = client(replica.port);
    await pollUntil(
      "the replica is in sync",
      async () => /^master_link_status:up/m.test(await replicaClient.info("replication")),
      { timeoutMs: 15_000 },
    );

    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await startOnFreePort((port) => {
        const file = join(dir, `sentinel-${port}.conf`);
        // tlsServerArgs as configuration lines: `--name value` → `name value`.
        const tls = options.tls ? tlsServerArgs(options.tls, port) : [];
        const tlsLines = tls.flatMap((arg, i) => (i % 2 === 0 ? [`${arg.slice(2)} ${tls[i + 1]}`] : []));
        const password = options.sentinelPassword;
        writeFileSync(
          file,
          [
            `port ${port}`,
            ...tlsLines,
            ...(password ? [`requirepass ${password}`, `sentinel sentinel-pass ${password}`] : []),
            "bind 127.0.0.1",
            `dir ${dir}`,
            `sentinel monitor ${NAME} 127.0.0.1 ${master.port} 2`,
            ...(options.adminPassword ? [`sentinel auth-pass ${NAME} ${options.adminPassword}`] : []),
            `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
            `sentinel failover-timeout ${NAME} 10000`,
            `sentinel parallel-syncs ${NAME} 1`,
            "",
          ].join("\n"),
        );
        return spawnSentinel(file);
      });
      children.set(sentinel.port, sentinel.started);
      sentinelPorts.push(sentinel.port);
    }
    // Every Sentinel knows the replica and the two other Sentinels (hello messages every 2 s), so a failover
    // can reach its quorum and has a replica to promote.
    let masterClient: Redis | undefined;
    const sentinelClients = sentinelPorts.map((port) => client(port, options.sentinelPassword));
    await pollUntil(
      "every Sentinel knows the replica and the other Sentinels",
      async () => {
        for (const sentinel of sentinelClients) {
          const replicas = (await sentinel.call("SENTINEL", "REPLICAS", NAME)) as unknown[];
          const others = (await sentinel.call("SENTINEL", "SENTINELS", NAME)) as unknown[];
          if (replicas.length < 1 || others.length < 2) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );

    const live = (port: number) => {
      const child = children.get(port);
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    };
    return {
      name: NAME,
      sentinelPorts,
      sentinelsVariable: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(","),
      dataPorts: [master.port, replica.port],
      node: (port) => (port === replica.port ? replicaClient : (masterClient ??= client(master.port))),
      sentinel: (port) => sentinelClients[sentinelPorts.indexOf(port)],
      async currentMaster() {
        const sentinel = sentinelClients[sentinelPorts.findIndex(live)];
        const [, port] = (await sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)) as [string, string];
        return Number(port);
      },
      async kill(port) {
        const child = children.get(port);
        if (child) await exited(child, "SIGKILL");
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
