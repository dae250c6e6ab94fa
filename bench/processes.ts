/**
 * The bench's child processes: the node servers it starts (ours, the bare baseline, the peer) and its
 * redis-server. Every one is tracked and stopped on exit, on errors and on SIGINT/SIGTERM. With `taskset` on PATH,
 * processes can be pinned to a core.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type RedisProcess } from "../test/helpers/redis-server";

export interface NodeServer {
  child: ChildProcess;
  port: number;
  /** The last lines it printed (for errors), and how many log lines were warnings or worse. */
  output: string[];
  warnings: number;
}

/** `node --a --b dist/main.js` in package.json's start script → `["--a", "--b"]`. */
export function startNodeArgs(root: string): string[] {
  const start = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: { start: string } }).scripts
    .start;
  const words = start.trim().split(/\s+/);
  if (words[0] !== "node") throw new Error(`package.json start script is not "node … dist/main.js": ${start}`);
  return words.slice(1, -1);
}

/**
 * Starts, pins and stops the bench's processes. Make one per run: the constructor installs the exit and signal
 * handlers that stop whatever is still running.
 */
export class BenchProcesses {
  /** Whether `taskset` is on PATH: without it nothing is pinned. */
  readonly hasTaskset = spawnSync("taskset", ["-V"], { stdio: "ignore" }).status === 0;
  private readonly children = new Set<ChildProcess>();
  private redis: RedisProcess | undefined;
  /** Redis's own pid: the exit handler runs synchronously, so it can only kill, not call `redis.stop()`. */
  private redisPid: number | undefined;

  /** `cwd`: the node servers' working directory. */
  constructor(private readonly cwd: string) {
    process.on("exit", () => {
      for (const child of this.children)
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      if (this.redisPid !== undefined) {
        try {
          process.kill(this.redisPid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.on(signal, () => {
        process.stderr.write(`\n${signal}: stopping the servers and Redis\n`);
        void this.stopAll().finally(() => process.exit(130));
      });
    }
  }

  /**
   * Takes charge of stopping `redis`, then reads its pid (for the exit handler) and version from INFO server.
   * The pid is NaN when INFO does not give one.
   */
  async adoptRedis(redis: RedisProcess): Promise<{ pid: number; version: string }> {
    this.redis = redis;
    const serverInfo = await redis.admin.info("server");
    this.redisPid = Number(/^process_id:(\d+)/m.exec(serverInfo)?.[1]);
    return { pid: this.redisPid, version: /^redis_version:(\S+)/m.exec(serverInfo)?.[1] ?? "unknown" };
  }

  /** Pins a process (every thread of it) to one core; false when taskset is missing or refused. */
  pin(pid: number, core: number): boolean {
    if (!this.hasTaskset) return false;
    return spawnSync("taskset", ["-a", "-pc", String(core), String(pid)], { stdio: "ignore" }).status === 0;
  }

  /**
   * Starts `node <args>` on core 0 (when taskset exists) on a free loopback port; resolves once `readyPath` answers
   * 200.
   */
  async startNode(label: string, args: string[], env: NodeJS.ProcessEnv, readyPath: string): Promise<NodeServer> {
    const port = await freePort();
    const command = this.hasTaskset ? "taskset" : process.execPath;
    const commandArgs = this.hasTaskset ? ["-c", "0", process.execPath, ...args] : args;
    const child = spawn(command, commandArgs, {
      cwd: this.cwd,
      env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.add(child);
    const server: NodeServer = { child, port, output: [], warnings: 0 };
    const onLine = (line: string) => {
      if (line.trim() === "") return;
      server.output.push(line);
      if (server.output.length > 50) server.output.shift();
      try {
        const level = (JSON.parse(line) as { level?: unknown }).level;
        if ((typeof level === "number" && level >= 40) || level === "warn" || level === "error" || level === "fatal")
          server.warnings++;
      } catch {
        server.warnings++; // not JSON: nothing this server prints should be like that
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let pending = "";
      stream?.on("data", (chunk: Buffer) => {
        const lines = (pending + chunk.toString()).split("\n");
        pending = lines.pop() ?? "";
        lines.forEach(onLine);
      });
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`${label} exited with ${child.exitCode}:\n${server.output.join("\n")}`);
      if (Date.now() > deadline) throw new Error(`${label} did not become ready in 30 s:\n${server.output.join("\n")}`);
      const status = await fetch(`http://127.0.0.1:${port}${readyPath}`).then(
        (res) => res.status,
        () => 0,
      );
      if (status === 200) return server;
      await sleep(100);
    }
  }

  /** Stops one of the node servers (SIGTERM, SIGKILL after 10 s). */
  stop(server: NodeServer): Promise<void> {
    return this.stopChild(server.child);
  }

  /** Stops every child (SIGTERM, SIGKILL after 10 s) and Redis. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((child) => this.stopChild(child)));
    if (this.redis) {
      const redis = this.redis;
      this.redis = undefined;
      await redis.stop().catch(() => undefined);
      this.redisPid = undefined;
    }
  }

  private stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
    this.children.delete(child);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill("SIGTERM");
    });
  }
}
