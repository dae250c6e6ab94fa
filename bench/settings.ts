/**
 * What `npm run bench` takes from the environment, read once into a frozen object (the variables and their
 * defaults are listed at the top of run.ts). The bench's other modules get what they need passed in.
 */
import { join, sep } from "node:path";

/** The repository root: the servers' working directory, where package.json, dist/ and src/ are. */
export const ROOT = join(__dirname, "..");

export interface BenchSettings {
  /** BENCH_SESSIONS: how many sessions to seed (rounded to whole users, see DataSet). */
  readonly sessions: number;
  /** BENCH_LARGE_SESSIONS: how many ~64 KB sessions to seed beside them (10 tenants, rounded to whole users). */
  readonly largeSessions: number;
  /** BENCH_DURATION: the measured seconds of each scenario. */
  readonly durationSeconds: number;
  /** BENCH_WARMUP: the warm-up seconds before each measured run (0: none). */
  readonly warmupSeconds: number;
  /** BENCH_SCENARIOS: the names to run; undefined runs them all. */
  readonly scenarios: readonly string[] | undefined;
  /** BENCH_SERVER_ENTRY: the server's main module. */
  readonly serverEntry: string;
  /** BENCH_NODE_ARGS: node flags for the server on top of those of `npm start`. */
  readonly serverNodeArgs: readonly string[];
  /**
   * BENCH_COMPARE_ENTRY: another build's main module (e.g. `../before/dist/main.js`): its server runs beside this
   * one, and the merge scenario alternates between the two BENCH_COMPARE_ROUNDS times (default 3).
   */
  readonly compareEntry: string | undefined;
  readonly compareRounds: number;
  /** BENCH_LIVE_RATE: merges per second of live-delivery (the target is judged at 1,000 only). */
  readonly liveMergesPerSecond: number;
  /** BENCH_OUTPUT: where the result JSON is written. */
  readonly output: string;
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): BenchSettings {
  return Object.freeze({
    sessions: Number(env.BENCH_SESSIONS ?? 100_000),
    largeSessions: Number(env.BENCH_LARGE_SESSIONS ?? 2000),
    durationSeconds: Number(env.BENCH_DURATION ?? 10),
    warmupSeconds: Number(env.BENCH_WARMUP ?? 2),
    scenarios: env.BENCH_SCENARIOS?.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    serverEntry: env.BENCH_SERVER_ENTRY ?? join(ROOT, "dist", "main.js"),
    serverNodeArgs: (env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean),
    compareEntry: env.BENCH_COMPARE_ENTRY || undefined,
    compareRounds: Number(env.BENCH_COMPARE_ROUNDS ?? 3),
    liveMergesPerSecond: Number(env.BENCH_LIVE_RATE ?? 1000),
    output: env.BENCH_OUTPUT ?? join(__dirname, "results", "latest.json"),
  });
}

/** `path` relative to the repository root when it lies inside it, as the bench prints and records paths. */
export const fromRoot = (path: string): string => (path.startsWith(ROOT + sep) ? path.slice(ROOT.length + 1) : path);
