import { execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { pollUntil } from "./poll";
import {
  adminClientOptions,
  exited,
  freePort,
  securityArgs,
  spawnRedis,
  type RedisServerOptions,
} from "./redis-server";

const run = promisify(execFile);

/** One node of the test cluster as `CLUSTER NODES` describes it. */
export interface ClusterNode {
  readonly id: string;
  readonly port: number;
  readonly role: "master" | "replica";
  /** For a replica: its master's id. */
  readonly masterId: string | undefined;
}

/** A real Redis Cluster of 3 masters and 3 replicas on loopback, started for one test file. */
export interface RedisClusterProcess {
  /** Every node's port (the seed list a client gets). */
  readonly ports: readonly number[];
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: what `REDIS_CLUSTER_NODES` takes. */
  readonly nodesVariable: string;
  /** An ordinary Cluster client for arranging and checking data; closed by `stop()`. */
  readonly admin: Cluster;
  /** A plain client to one node (for CLUSTER commands, INFO, MIGRATE); closed by `stop()`. */
  node(port: number): Redis;
  /** The cluster's nodes as one node currently sees them. */
  topology(): Promise<ClusterNode[]>;
  /** The port of the master that serves `slot`, as the given node sees it (default: the first node). */
  ownerOf(slot: number, askPort?: number): Promise<number>;
  /** SIGKILLs one node (a crash). */
  kill(port: number): Promise<void>;
  /** Resolves once every live node reports `cluster_state:ok` and agrees that every slot has a master. */
  waitUntilOk(timeoutMs: number, ports?: readonly number[]): Promise<void>;
  /** Stops every node and the clients, and removes the node config files. */
  stop(): Promise<void>;
}

const MASTERS = 3;
const NODE_TIMEOUT_MS = 2000;

async function startNode(dir: string, options: RedisServerOptions): Promise<{ port: number; child: ChildProcess }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    // The bus port is given explicitly: the default (port + 10000) may be taken or above 65535.
    const busPort = await freePort();
    try {
      const child = await spawnRedis(port, [
        ...securityArgs(options, port),
        ...(options.tls ? ["--tls-cluster", "yes"] : []),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--cluster-port",
        String(busPort),
        "--cluster-node-timeout",
        String(NODE_TIMEOUT_MS),
        "--dir",
        dir,
      ]);
      return { port, child };
    } catch (error) {
      if (attempt >= 4) throw error; // a port was taken between freePort() and the bind
    }
  }
}

function parseNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id, address, flags, masterId] = line.split(" ");
      const port = Number(address.split("@")[0].split(":").pop());
      const replica = flags.split(",").includes("slave");
      return { id, port, role: replica ? "replica" : "master", masterId: replica ? masterId : undefined };
    });
}

/**
 * Starts 6 cluster-enabled redis-servers, joins them with `redis-cli --cluster create`, and waits until all is ok.
 * With `options.tls` every node serves TLS only, the Cluster bus and replication included; with
 * `options.adminPassword` every node wants it (replicas too, from their masters), and the helper's clients use it.
 */
export async function startRedisCluster(options: RedisServerOptions = {}): Promise<RedisClusterProcess> {
  const dir = mkdtempSync(join(tmpdir(), "scs-cluster-"));
  const started = await Promise.all(Array.from({ length: MASTERS * 2 }, () => startNode(dir, options)));
  const children = new Map(started.map(({ port, child }) => [port, child]));
  const ports = started.map(({ port }) => port);
  const clients = new Map<number, Redis>();
  const node = (port: number) => {
    let client = clients.get(port);
    if (!client) {
      client = new Redis({
        host: "127.0.0.1",
        port,
        maxRetriesPerRequest: 1,
        retryStrategy: () => 100,
        ...adminClientOptions(options),
      });
      client.on("error", () => undefined); // a killed node: the test asks for it on purpose
      clients.set(port, client);
    }
    return client;
  };
  let admin: Cluster | undefined;

  const stop = async () => {
    admin?.disconnect();
    for (const client of clients.values()) client.disconnect();
    await Promise.all([...children.values()].map((child) => exited(child, "SIGTERM")));
    rmSync(dir, { recursive: true, force: true });
  };

  const live = () => ports.filter((port) => children.get(port)?.exitCode === null && !children.get(port)?.signalCode);

  const waitUntilOk = async (timeoutMs: number, which: readonly number[] = live()) => {
    await pollUntil(
      "every cluster node reports cluster_state:ok",
      async () => {
        for (const port of which) {
          const info = await node(port).cluster("INFO");
          if (!/^cluster_state:ok\r?$/m.test(info) || !/^cluster_slots_ok:16384\r?$/m.test(info)) return false;
        }
        return true;
      },
      { timeoutMs },
    );
  };

  try {
    await run(
      "redis-cli",
      [
        ...(options.tls ? ["--tls", "--cacert", options.tls.caFile] : []),
        "--cluster",
        "create",
        ...ports.map((p) => `127.0.0.1:${p}`),
        "--cluster-replicas",
        "1",
        "--cluster-yes",
      ],
      // The password through the environment: on the command line (-a) redis-cli warns that it is not safe.
      {
        timeout: 30_000,
        env: { ...process.env, ...(options.adminPassword ? { REDISCLI_AUTH: options.adminPassword } : {}) },
      },
    );
    await waitUntilOk(30_000, ports);
    // Every node knows every other one (gossip), and every replica has finished its first sync.
    await pollUntil(
      "every node knows the others and every replica is in sync",
      async () => {
        for (const port of ports) {
          const info = await node(port).cluster("INFO");
          if (!new RegExp(`^cluster_known_nodes:${ports.length}\\r?$`, "m").test(info)) return false;
          const replication = await node(port).info("replication");
          if (/^role:slave/m.test(replication) && !/^master_link_status:up/m.test(replication)) return false;
        }
        return true;
      },
      { timeoutMs: 30_000 },
    );
    admin = new Cluster(
      ports.map((port) => ({ host: "127.0.0.1", port })),
      { redisOptions: { maxRetriesPerRequest: 1, ...adminClientOptions(options) } },
    );
    admin.on("error", () => undefined);
    const ready = admin;
    await pollUntil(
      "the admin cluster client is ready",
      () => ready.status,
      (status) => status === "ready",
      { timeoutMs: 10_000 },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const topology = async (askPort = live()[0]) => parseNodes(String(await node(askPort).cluster("NODES")));

  return {
    ports,
    nodesVariable: ports.map((port) => `127.0.0.1:${port}`).join(","),
    admin,
    node,
    topology,
    async ownerOf(slot, askPort = live()[0]) {
      const ranges = await node(askPort).cluster("SLOTS");
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!range?.[2]) throw new Error(`no node serves slot ${slot}`);
      return range[2][1];
    },
    kill: async (port) => {
      const child = children.get(port);
      if (child) await exited(child, "SIGKILL");
    },
    waitUntilOk,
    stop,
  };
}
