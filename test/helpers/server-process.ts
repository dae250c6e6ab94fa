import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const ROOT = join(__dirname, "..", "..");

/** A log line of the server (everything it prints is one JSON object per line). */
export type LogLine = Record<string, unknown> & { msg?: string; time?: string };

/** The real server as its own OS process (`node main.js`), as an operator runs it. */
export interface ServerProcess {
  readonly url: string;
  /** The OS process id, for signals other than stop()'s. */
  readonly pid: number;
  /** Every log line so far, parsed. */
  readonly lines: readonly LogLine[];
  /** Resolves with the first line (past or future) that matches; rejects after `timeoutMs`. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

let built: string | undefined;

/**
 * Compiles the server once per test worker into `.test-build/<pid>` inside the project (so `node_modules`
 * resolves), with the Lua scripts beside it, as `npm run build` does for dist/.
 */
export function buildServer(): string {
  if (built) return built;
  const outDir = join(ROOT, ".test-build", String(process.pid));
  rmSync(outDir, { recursive: true, force: true });
  const tsc = spawnSync(
    process.execPath,
    [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", outDir],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  if (tsc.status !== 0) throw new Error(`tsc failed: ${tsc.stdout}${tsc.stderr}`);
  cpSync(join(ROOT, "src/store/redis/scripts"), join(outDir, "store/redis/scripts"), { recursive: true });
  built = outDir;
  return outDir;
}

/** Removes this worker's build. */
export function removeBuild(): void {
  if (built) rmSync(built, { recursive: true, force: true });
  built = undefined;
}

/** Starts `node main.js` from the test build on a free loopback port; resolves once it is serving. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const outDir = buildServer();
  const child: ChildProcess = spawn(process.execPath, [join(outDir, "main.js")], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: "test", LOG_LEVEL: "info", HOST: "127.0.0.1", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: LogLine[] = [];
  const waiters = new Set<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();
  const onLine = (text: string) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, unparsed: true };
    }
    lines.push(line);
    for (const waiter of waiters) {
      if (waiter.match(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  createInterface({ input: child.stdout! }).on("line", onLine);
  createInterface({ input: child.stderr! }).on("line", onLine);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs: number) => {
    const past = lines.find(match);
    if (past) return Promise.resolve(past);
    return new Promise<LogLine>((resolve, reject) => {
      const waiter = { match, resolve: (line: LogLine) => (clearTimeout(timer), resolve(line)) };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(
          new Error(`no matching log line within ${timeoutMs} ms; last lines: ${JSON.stringify(lines.slice(-5))}`),
        );
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const serving = await Promise.race([
    waitForLine((line) => typeof line.port === "number" && String(line.msg).startsWith("serving"), 20_000),
    exited.then((code) => {
      throw new Error(`server exited with ${code} before serving: ${JSON.stringify(lines.slice(-5))}`);
    }),
  ]);
  return {
    url: `http://127.0.0.1:${serving.port as number}`,
    pid: child.pid!,
    lines,
    waitForLine,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
