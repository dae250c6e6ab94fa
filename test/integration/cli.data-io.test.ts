import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant } from "../helpers/test-server";

/**
 * The `sessions` command: help for each command, the exit codes, and one line on stderr saying why it failed; the
 * last test runs it as its own process, as people do.
 */

const ROOT = join(__dirname, "..", "..");

function sessions(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "src/cli.ts", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

let redis: RedisProcess;
let dir: string;
beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "cli-"));
});
afterAll(async () => {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `main` in this process (fast: no process start), with what it writes captured. */
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = jest.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

it("explains each command with --help and exits 0", async () => {
  for (const command of ["export", "import", "migrate-legacy"]) {
    const help = await inProcess([command, "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`Usage: sessions ${command} [options]`);
    expect(help.stdout).toContain("Example");
  }
});

it("exits 2 with one line for bad usage or configuration", async () => {
  const unknown = await inProcess(["export", "--tenant", "t", "--bogus"]);
  const badId = await inProcess(["export", "--tenant", "bad\u0001id"]);
  const bothSources = await inProcess(["migrate-legacy", "--from", redis.url, "--from-cluster", "127.0.0.1:1"]);
  expect([unknown.code, badId.code, bothSources.code]).toEqual([2, 2, 2]);
  expect(unknown.stderr).toContain("unknown option '--bogus'");
  expect(badId.stderr).toContain("must not contain control characters");
  expect(bothSources.stderr.trim()).toBe(
    "sessions: give the legacy Redis with exactly one of --from, --from-cluster and --from-sentinels",
  );
});

it("exports to stdout, and imports with exit 3 when some lines were bad, plain progress lines off a terminal", async () => {
  const tenant = freshTenant();
  const env = { REDIS_URL: redis.url };
  const file = join(dir, "in.ndjson");
  const line = (sessionId: string) =>
    JSON.stringify({
      tenantId: tenant,
      userId: "u",
      sessionId,
      version: 1,
      storedAt: 1,
      lastUpdated: 1,
      ttlSeconds: 60,
      conversationState: { a: 1 },
      interruptedQueries: [],
      recentInteractions: [],
      userPreferences: {},
      remainingTtlMs: 60_000,
      history: [],
    });
  writeFileSync(file, `${line("s1")}\nnot json\n${line("s2")}\n`);

  // Its own process, as people run it: the exit code and stderr are the process's.
  const imported = await sessions(["import", "--in", file], env);
  const exported = await sessions(["export", "--tenant", tenant], env);

  expect(imported.code).toBe(3);
  expect(imported.stderr).toContain("line 2: not JSON");
  expect(imported.stderr).toMatch(
    /import: 3 lines: 2 written, 0 unchanged, 0 kept \(skip\), 0 not newer, 0 expired, 1 bad in [\d.]+ s/,
  );
  expect(exported.code).toBe(0);
  expect(
    exported.stdout
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { sessionId: string }).sessionId)
      .sort(),
  ).toEqual(["s1", "s2"]);
  expect(exported.stderr).toMatch(/export: 2 sessions in [\d.]+ s/);
}, 30_000);
