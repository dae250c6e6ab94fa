import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { type Cluster, Redis, type RedisOptions } from "ioredis";
import { pollUntil } from "./poll";
import { tlsServerArgs, type TestCertificates } from "./tls";

/** A real redis-server for one test file, on a free loopback port, that the test may stop, kill or restart. */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** A plain client for arranging and checking state; closed by `stop()`. */
  readonly admin: Redis;
  /** Kills the server (SIGKILL: like a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty (nothing is persisted). */
  restart(): Promise<void>;
  /**
   * Stops the server in its tracks (SIGSTOP): connections stay open and whatever is sent waits, unanswered, until
   * `thaw()` (SIGCONT). Unlike CLIENT PAUSE, which nothing can end early, the test ends it when it chooses.
   */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Stops the server and the admin client. */
  stop(): Promise<void>;
  /** `INFO commandstats` as command → calls. */
  commandCalls(): Promise<Record<string, number>>;
}

/** A redis-server that serves TLS only, or wants a password, or both. */
export interface RedisServerOptions {
  /** Serve TLS only (tlsServerArgs): `url` is then `rediss://…` and the admin client trusts the test CA. */
  tls?: TestCertificates;
  /** The `default` user's password (`requirepass`; replicas use it too, `masterauth`): the admin client's. */
  adminPassword?: string;
}

/** redis-server arguments for `options` on `port`, before any others. */
export function securityArgs(options: RedisServerOptions, port: number): string[] {
  const password = options.adminPassword;
  return [
    ...(options.tls ? tlsServerArgs(options.tls, port) : []),
    ...(password ? ["--requirepass", password, "--masterauth", password] : []),
  ];
}

/** ioredis options of an admin client to a server started with `options`. */
export function adminClientOptions(options: RedisServerOptions): RedisOptions {
  return {
    ...(options.tls ? { tls: { ca: options.tls.ca } } : {}),
    ...(options.adminPassword ? { password: options.adminPassword } : {}),
  };
}

export function redisServerOnPath(): boolean {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

/** A port nobody listens on right now (another process may still take it before we bind it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on `port` (loopback, nothing persisted); resolves once it accepts connections. */
export function spawnRedis(port: number, extraArgs: readonly string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--logfile",
        "",
        ...extraArgs,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        child.stdout?.off("data", onData);
        child.stdout?.resume(); // keep draining so the pipe never fills
        child.off("exit", onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`redis-server exited with ${code}: ${output.slice(-500)}`));
    child.stdout?.on("data", onData);
    child.stderr?.resume();
    child.once("exit", onExit);
    child.once("error", reject);
  });
}

/** Sends `signal` to the child unless it already exited; resolves once it has. */
export function exited(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/**
 * Starts redis-server from PATH. Without redis-server but with REDIS_URL set, it uses that server instead; such a
 * server cannot be killed or restarted, so the tests that need that fail with a clear message.
 */
export async function startRedis(
  extraArgs: readonly string[] = [],
  options: RedisServerOptions = {},
): Promise<RedisProcess> {
  if (!redisServerOnPath()) {
    if (options.tls || options.adminPassword) throw new Error("this test needs redis-server on PATH (TLS, ACL)");
    const url = process.env.REDIS_URL;
    if (!url) throw new Error("redis-server is not on PATH and REDIS_URL is not set: the tests need a real Redis");
    const admin = new Redis(url, { lazyConnect: false });
    const unsupported = async () => {
      throw new Error("this test needs redis-server on PATH: it stops and restarts Redis");
    };
    return {
      port: Number(new URL(url).port || 6379),
      url,
      admin,
      kill: unsupported,
      restart: unsupported,
      freeze: unsupported,
      thaw: unsupported,
      stop: async () => void (await admin.quit()),
      commandCalls: () => commandCalls(admin),
    };
  }

  let port = 0;
  let child: ChildProcess | undefined;
  const args = (port: number) => [...securityArgs(options, port), ...extraArgs];
  for (let attempt = 0; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port, args(port));
    } catch (error) {
      if (attempt >= 4) throw error; // the port was taken between freePort() and redis-server's bind
    }
  }
  const url = `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}`;
  const admin = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100, ...adminClientOptions(options) });
  let current: ChildProcess = child;
  return {
    port,
    url,
    admin,
    kill: () => exited(current, "SIGKILL"),
    restart: async () => {
      await exited(current, "SIGKILL");
      current = await spawnRedis(port, args(port));
    },
    freeze: async () => void current.kill("SIGSTOP"),
    thaw: async () => void current.kill("SIGCONT"),
    stop: async () => {
      admin.disconnect();
      current.kill("SIGCONT"); // a frozen server would leave SIGTERM pending
      await exited(current, "SIGTERM");
    },
    commandCalls: () => commandCalls(admin),
  };
}

/** A TIME reply in milliseconds: Redis's clock, the one the store stamps writes and expiries with. */
export function timeReplyMs([seconds, micros]: readonly (string | number)[]): number {
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

const redisTimeMs = async (admin: Redis | Cluster) => timeReplyMs(await admin.time());

/**
 * Lets at least `ms` milliseconds pass on Redis's clock. Redis announces no time, so its TIME is polled; a test
 * cluster's nodes share this machine's clock, so whichever node answers does.
 */
export async function waitForRedisClock(admin: Redis | Cluster, ms: number): Promise<void> {
  const target = (await redisTimeMs(admin)) + ms;
  await pollUntil(
    `Redis's clock passed ${ms} ms`,
    () => redisTimeMs(admin),
    (now) => now >= target,
    { timeoutMs: ms + 5000, intervalMs: 10 },
  );
}

async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]] = Number(match[2]);
  return calls;
}
