import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import pino from "pino";
import { ConfigError, loadToolConfig, parseAddressList, type ToolConfig } from "./config";
import { CommandRefused, runExport } from "./data/export-command";
import { runImport, type RunResult } from "./data/import-command";
import { createInterrupt, INTERRUPTED_EXIT_CODE, onSignals } from "./data/interrupt";
import { LEGACY_PATTERN } from "./data/legacy-session";
import { runMigrateLegacy } from "./data/migrate-legacy-command";
import { createProgress, progressStyle, type ProgressStyle } from "./data/progress";
import { idProblem } from "./sessions/ids";
import { createRedisClient, whenReady, type RedisClient, type RedisClientOptions } from "./store/redis/redis-client";
import { RedisCleanupSchedule } from "./store/redis/redis-cleanup-schedule";
import { RedisSessionTransfer, type ImportMode } from "./store/redis/redis-session-transfer";
import { DEFAULT_TENANT_SETTINGS } from "./tenants/tenant-settings";

/**
 * `sessions` — the data tool that ships with the service (`npm run sessions -- <command>`, `node dist/cli.js`):
 * export, import and migrate-legacy. It reaches the service's Redis through the same variables and client factory as
 * the server. Exit codes: 0 done; 1 failed (one line on stderr says why); 2 bad usage or configuration; 3 done, but
 * some inputs were bad and skipped (listed on stderr and in --report); 130 interrupted (run it again to go on).
 */

const EXIT = { done: 0, failed: 1, usage: 2, someSkipped: 3 } as const;

/** How long a command of the tool may wait for Redis: batches are larger than a request's commands. */
const COMMAND_TIMEOUT_MS = 30_000;

const say = (line: string) => void process.stderr.write(`${line}\n`);
const n = (value: number) => value.toLocaleString("en");

function positive(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1) throw new InvalidArgumentError("must be a whole number of at least 1");
  return number;
}

function id(value: string): string {
  const problem = idProblem(value);
  if (problem) throw new InvalidArgumentError(problem);
  return value;
}

function addresses(value: string) {
  const list = parseAddressList(value);
  if (typeof list === "string") throw new InvalidArgumentError(list);
  return list;
}

const modeOption = () =>
  new Option(
    "--mode <mode>",
    "what to do with a session that is there already: keep it (skip), replace it (overwrite), or replace it when the input was written later (newer)",
  )
    .choices(["skip", "overwrite", "newer"])
    .default("skip");
const progressOption = () =>
  new Option(
    "--progress <style>",
    "progress on stderr: auto (a bar on a terminal, else a line every 5 s), bar, lines, none",
  )
    .choices(["auto", "bar", "lines", "none"])
    .default("auto");

/** The service's Redis, from its configuration (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS, …). */
function destination(config: ToolConfig): RedisClientOptions {
  if (config.redis === undefined)
    throw new CommandRefused(
      "no Redis configured: set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS as for the server",
    );
  return { ...config.redis, security: config.redisSecurity, ...clientDefaults() };
}

function clientDefaults() {
  return {
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    connectTimeoutMs: 5000,
    logger: pino({ level: "error" }, pino.destination(2)),
  };
}

async function connect(options: RedisClientOptions, what: string): Promise<RedisClient> {
  const client = createRedisClient(options);
  if (!(await whenReady(client, 10_000))) {
    client.disconnect();
    throw new Error(`cannot reach ${what} (no connection within 10 s)`);
  }
  return client;
}

function transferOn(client: RedisClient): RedisSessionTransfer {
  return new RedisSessionTransfer(client, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(client),
  });
}

/** Runs one command: connections, progress and signals around it, then the summary and the exit code. */
async function run<C>(
  name: string,
  style: "auto" | ProgressStyle,
  body: (deps: {
    progress: ReturnType<typeof createProgress>;
    interrupt: ReturnType<typeof createInterrupt>;
  }) => Promise<RunResult<C>>,
  summary: (counts: C) => { line: string; skipped: number },
  clients: RedisClient[],
): Promise<number> {
  const progress = createProgress({ style: progressStyle(style, process.stderr), stream: process.stderr, label: name });
  const interrupt = createInterrupt();
  const unwire = onSignals(interrupt, (line) => progress.log(line));
  const started = Date.now();
  try {
    const result = await body({ progress, interrupt });
    const { line, skipped } = summary(result.counts);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.interrupted) {
      say(`${name}: interrupted after ${line}; run the same command again to go on`);
      return INTERRUPTED_EXIT_CODE;
    }
    say(`${name}: ${line} in ${seconds} s`);
    return skipped > 0 ? EXIT.someSkipped : EXIT.done;
  } finally {
    unwire();
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  }
}

function program(config: () => ToolConfig, exitWith: (code: number) => void): Command {
  const root = new Command("sessions")
    .description("Export, import and migrate session contexts of the Session Context Service")
    .showHelpAfterError("(add --help for the options)")
    .addHelpText(
      "after",
      `
The Redis is the service's own: REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (and the REDIS_* credentials
and TLS variables), with MAX_CONTEXT_BYTES and MAX_TTL_SECONDS, exactly as the server reads them.
Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 done with bad inputs skipped, 130 interrupted.`,
    );

  root
    .command("export")
    .description("write every session of a tenant (or of one user) as NDJSON, one line per session with its history")
    .requiredOption("--tenant <id>", "the tenant", id)
    .option("--user <id>", "only this user's sessions", id)
    .option("--out <file>", "write to this file (resumable) instead of standard output")
    .option("--force", "replace --out when it exists and is no unfinished export", false)
    .option("--batch <n>", "index entries read per step", positive, 500)
    .addOption(progressOption())
    .addHelpText(
      "after",
      `
Example:
  npm run -s sessions -- export --tenant acme --out acme.ndjson
  node dist/cli.js export --tenant acme --user u-42 > u-42.ndjson
Interrupted (Ctrl-C), the same command goes on where it stopped.`,
    )
    .action(
      async (options: {
        tenant: string;
        user?: string;
        out?: string;
        force: boolean;
        batch: number;
        progress: ProgressStyle;
      }) => {
        const client = await connect(destination(config()), "the service's Redis");
        exitWith(
          await run(
            "export",
            options.progress,
            (deps) =>
              runExport(
                {
                  tenantId: options.tenant,
                  userId: options.user,
                  out: options.out,
                  force: options.force,
                  batch: options.batch,
                },
                transferOn(client),
                deps,
              ),
            (counts) => ({
              line: `${n(counts.sessions)} sessions${counts.gone > 0 ? ` (${n(counts.gone)} expired while reading)` : ""}`,
              skipped: 0,
            }),
            [client],
          ),
        );
      },
    );

  root
    .command("import")
    .description("write the sessions of an export file into the service's Redis (idempotent, resumable)")
    .option("--in <file>", "the export file (default: standard input, not resumable)")
    .addOption(modeOption())
    .option("--report <file>", "also write the skipped lines and why as NDJSON")
    .option("--restart", "ignore where an interrupted import of the file stopped", false)
    .option("--batch <n>", "sessions written at once", positive, 200)
    .option("--max-line-bytes <n>", "longest line read; longer ones are skipped", positive, 64 * 1024 * 1024)
    .addOption(progressOption())
    .addHelpText(
      "after",
      `
Each session is written whole in one atomic step with its indexes and change log, keeping its version, times and
remaining TTL; a session already there as in the file is left alone, so importing a file twice changes nothing.
Example:
  npm run -s sessions -- import --in acme.ndjson --mode newer`,
    )
    .action(
      async (options: {
        in?: string;
        mode: ImportMode;
        report?: string;
        restart: boolean;
        batch: number;
        maxLineBytes: number;
        progress: ProgressStyle;
      }) => {
        const toolConfig = config();
        const client = await connect(destination(toolConfig), "the service's Redis");
        exitWith(
          await run(
            "import",
            options.progress,
            (deps) =>
              runImport(
                {
                  input: options.in,
                  mode: options.mode,
                  batch: options.batch,
                  report: options.report,
                  restart: options.restart,
                  limits: toolConfig,
                  maxLineBytes: options.maxLineBytes,
                },
                transferOn(client),
                deps,
              ),
            (c) => ({
              line:
                `${n(c.lines)} lines: ${n(c.written)} written, ${n(c.unchanged)} unchanged, ${n(c.kept)} kept (skip), ` +
                `${n(c.notNewer)} not newer, ${n(c.expired)} expired, ${n(c.bad)} bad`,
              skipped: c.bad,
            }),
            [client],
          ),
        );
      },
    );

  root
    .command("migrate-legacy")
    .description(
      "move contexts from the earlier Python service's Redis layout into this service's (the source is only read)",
    )
    .option("--from <url>", "the legacy Redis: redis://[user:password@]host:port (rediss:// for TLS)")
    .option("--from-cluster <nodes>", "the legacy Redis Cluster: host:port,host:port,…", addresses)
    .option("--from-sentinels <nodes>", "the legacy Redis's Sentinels: host:port,…", addresses)
    .option("--from-sentinel-name <name>", "the master name the legacy Sentinels monitor")
    .option("--from-username <user>", "ACL user on the legacy Cluster or Sentinel-managed Redis")
    .option("--from-password-file <file>", "file holding that password (kept off the command line)")
    .option("--from-tls", "TLS to the legacy Cluster nodes or Sentinels", false)
    .option("--from-tls-ca-file <file>", "PEM file of the CA that signed the legacy Redis's certificate")
    .option("--match <pattern>", "SCAN MATCH pattern of the legacy keys", LEGACY_PATTERN)
    .option("--dry-run", "read and convert everything, report, write nothing", false)
    .addOption(modeOption())
    .option("--report <file>", "write what could not be moved and why (and what was filled in) as NDJSON")
    .option("--state <file>", "where an interrupted migration saves where it stopped", "migrate-legacy.state.json")
    .option("--restart", "ignore the saved state and scan from the start", false)
    .option(
      "--ttl-if-none <seconds>",
      "TTL for legacy keys that have none",
      positive,
      DEFAULT_TENANT_SETTINGS.defaultTtlSeconds,
    )
    .option("--batch <n>", "SCAN COUNT: keys looked at per step", positive, 500)
    .addOption(progressOption())
    .addHelpText(
      "after",
      `
Legacy keys are tenant:<tenant>:user:<user>:session:<session> holding JSON with conversation_state,
interrupted_queries, recent_interactions, user_preferences, stored_at and last_updated (ISO-8601 or epoch seconds);
the expiry is the key's TTL. The source is scanned with SCAN on every master and only read (GET, PTTL).
Examples:
  npm run -s sessions -- migrate-legacy --from redis://old-redis:6379 --dry-run --report dry.ndjson
  npm run -s sessions -- migrate-legacy --from-cluster old-1:7000,old-2:7000 --report moved.ndjson`,
    )
    .action(
      async (options: {
        from?: string;
        fromCluster?: { host: string; port: number }[];
        fromSentinels?: { host: string; port: number }[];
        fromSentinelName?: string;
        fromUsername?: string;
        fromPasswordFile?: string;
        fromTls: boolean;
        fromTlsCaFile?: string;
        match: string;
        dryRun: boolean;
        mode: ImportMode;
        report?: string;
        state: string;
        restart: boolean;
        ttlIfNone: number;
        batch: number;
        progress: ProgressStyle;
      }) => {
        const toolConfig = config();
        const sources = [options.from, options.fromCluster, options.fromSentinels].filter((s) => s !== undefined);
        if (sources.length !== 1)
          throw new CommandRefused(
            "give the legacy Redis with exactly one of --from, --from-cluster and --from-sentinels",
          );
        if ((options.fromSentinels === undefined) !== (options.fromSentinelName === undefined))
          throw new CommandRefused("--from-sentinels and --from-sentinel-name go together");
        const security = {
          username: options.fromUsername,
          password:
            options.fromPasswordFile === undefined ? undefined : readFileSync(options.fromPasswordFile, "utf8").trim(),
          tls: options.fromTls
            ? { ca: options.fromTlsCaFile && readFileSync(options.fromTlsCaFile, "utf8") }
            : undefined,
        };
        let sourceOptions: RedisClientOptions;
        let label: string;
        if (options.from !== undefined) {
          if (!/^rediss?:\/\/.+/.test(options.from) || !URL.canParse(options.from))
            throw new CommandRefused("--from must be a redis:// or rediss:// URL");
          sourceOptions = { url: options.from, ...clientDefaults() };
          const url = new URL(options.from);
          label = `${url.protocol}//${url.host}${url.pathname}`;
        } else if (options.fromCluster !== undefined) {
          sourceOptions = { clusterNodes: options.fromCluster, security, ...clientDefaults() };
          label = `cluster ${options.fromCluster.map((a) => `${a.host}:${a.port}`).join(",")}`;
        } else {
          sourceOptions = {
            sentinels: options.fromSentinels!,
            sentinelName: options.fromSentinelName!,
            security,
            ...clientDefaults(),
          };
          label = `sentinel ${options.fromSentinelName}`;
        }
        const source = await connect(sourceOptions, "the legacy Redis");
        const target = options.dryRun
          ? undefined
          : await connect(destination(toolConfig), "the service's Redis").catch(async (error: unknown) => {
              source.disconnect();
              throw error;
            });
        exitWith(
          await run(
            options.dryRun ? "migrate-legacy (dry run)" : "migrate-legacy",
            options.progress,
            (deps) =>
              runMigrateLegacy(
                {
                  sourceLabel: label,
                  match: options.match,
                  dryRun: options.dryRun,
                  mode: options.mode,
                  batch: options.batch,
                  report: options.report,
                  statePath: options.state,
                  restart: options.restart,
                  legacy: { ...toolConfig, ttlIfNone: options.ttlIfNone },
                },
                source,
                target && transferOn(target),
                deps,
              ),
            (c) => ({
              line:
                `${n(c.keys)} keys: ${n(c.written)} ${options.dryRun ? "would be moved" : "moved"}, ${n(c.unchanged)} already there, ` +
                `${n(c.kept)} kept (skip), ${n(c.notNewer)} not newer, ${n(c.expired)} expired, ` +
                `${c.ownLayout > 0 ? `${n(c.ownLayout)} of this service's layout left alone, ` : ""}${n(c.bad)} could not be moved` +
                `${c.noted > 0 ? `, ${n(c.noted)} with notes` : ""}`,
              skipped: c.bad,
            }),
            target === undefined ? [source] : [source, target],
          ),
        );
      },
    );
  return root;
}

/** Parses the arguments, runs the command and exits with its code; every failure is one line on stderr. */
export async function main(argv: readonly string[]): Promise<number> {
  let toolConfig: ToolConfig | undefined;
  const config = () => (toolConfig ??= loadToolConfig());
  let code: number = EXIT.done;
  const cli = program(config, (result) => (code = result))
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  for (const command of cli.commands) command.exitOverride();
  try {
    await cli.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.done : EXIT.usage;
    if (error instanceof ConfigError) {
      for (const problem of error.problems) say(`sessions: invalid configuration: ${problem}`);
      return EXIT.usage;
    }
    if (error instanceof CommandRefused) {
      say(`sessions: ${error.message}`);
      return EXIT.usage;
    }
    say(`sessions: ${oneLine(error)}`);
    return EXIT.failed;
  }
  return code;
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0];
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      say(`sessions: ${oneLine(error)}`);
      process.exit(EXIT.failed);
    },
  );
}
