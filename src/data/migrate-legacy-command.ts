import { TextDecoder } from "node:util";
import { Cluster, type Redis } from "ioredis";
import type { RedisClient } from "../store/redis/redis-client";
import { ImportStatus } from "../store/redis/redis-scripts";
import type { ImportMode, RedisSessionTransfer } from "../store/redis/redis-session-transfer";
import type { CommandDeps, RunResult } from "./import-command";
import { convertLegacy, type LegacyOptions } from "./legacy-session";
import { ProblemReport } from "./report";
import { RunState } from "./run-state";
import { InputProblem, type SessionImport } from "./session-import";

export interface MigrateOptions {
  /** What the source is, for the state file and messages (never with a password). */
  readonly sourceLabel: string;
  /** SCAN MATCH pattern on the source. */
  readonly match: string;
  /** Read, convert and report, but write nothing (and keep no state). */
  readonly dryRun: boolean;
  readonly mode: ImportMode;
  /** SCAN COUNT: keys looked at per step on a node. */
  readonly batch: number;
  readonly report: string | undefined;
  readonly statePath: string;
  readonly restart: boolean;
  readonly legacy: LegacyOptions;
}

export interface MigrateCounts {
  keys: number;
  /** Written (or, in a dry run, that would be). */
  written: number;
  unchanged: number;
  kept: number;
  notNewer: number;
  /** Gone (expired) between the scan and the read, or expired by the time of the write. */
  expired: number;
  /** Keys of this service's own layout that the pattern matched (left alone). */
  ownLayout: number;
  /** Could not be moved: in the report with the reason. */
  bad: number;
  /** Moved with something filled in or changed: in the report with a note. */
  noted: number;
}

interface MigrateState {
  command: "migrate-legacy";
  source: string;
  match: string;
  /** SCAN cursor per source node (`host:port`) still being walked; "0" once done. */
  cursors: Record<string, string>;
  counts: MigrateCounts;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `migrate-legacy`: walks the legacy source with SCAN on each master (one Redis, the master Sentinels name, or every
 * master of a Cluster), COUNT keys per step, reads each key's value and TTL (GET and PTTL, nothing else: the source
 * is only read), converts them (legacy-session.ts) and writes them as an import does. Saves the cursors after each
 * step (`--state`), so an interrupted migration goes on where it stopped; a key seen twice is `unchanged`.
 * A dry run does everything but write, and keeps no state.
 */
export async function runMigrateLegacy(
  options: MigrateOptions,
  source: RedisClient,
  transfer: RedisSessionTransfer | undefined,
  deps: CommandDeps,
): Promise<RunResult<MigrateCounts>> {
  const { progress, interrupt } = deps;
  const state = options.dryRun ? undefined : new RunState<MigrateState>(options.statePath);
  const saved = options.restart
    ? undefined
    : state?.read(
        (s) => s.command === "migrate-legacy" && s.source === options.sourceLabel && s.match === options.match,
      );
  const counts: MigrateCounts = saved?.counts ?? {
    keys: 0,
    written: 0,
    unchanged: 0,
    kept: 0,
    notNewer: 0,
    expired: 0,
    ownLayout: 0,
    bad: 0,
    noted: 0,
  };
  const cursors: Record<string, string> = { ...saved?.cursors };
  const report = new ProblemReport((line) => progress.log(line), options.report, saved !== undefined);
  const nodes = source instanceof Cluster ? source.nodes("master") : [source];
  const label = (node: Redis) => `${node.options.host}:${node.options.port}`;
  const sizes = await Promise.all(nodes.map((node) => node.dbsize()));
  progress.start(
    sizes.reduce((a, b) => a + b, 0),
    counts.keys,
    "keys",
  );
  if (saved !== undefined) progress.log(`migrate-legacy: going on after ${counts.keys.toLocaleString("en")} keys`);
  let interrupted = false;

  try {
    for (const node of nodes) {
      let cursor = cursors[label(node)];
      if (cursor === "0") continue; // this node was done in the run that stopped
      cursor ??= "0";
      do {
        const [next, keys] = await node.scanBuffer(cursor, "MATCH", options.match, "COUNT", options.batch);
        const sessions = await readAndConvert(node, keys, options, counts, report);
        if (transfer !== undefined) {
          const statuses = await Promise.all(sessions.map((session) => transfer.write(session, options.mode)));
          for (const status of statuses) count(counts, status);
        } else counts.written += sessions.length;
        cursor = next.toString();
        cursors[label(node)] = cursor;
        state?.save({ command: "migrate-legacy", source: options.sourceLabel, match: options.match, cursors, counts });
        progress.update(counts.keys, `${counts.written.toLocaleString("en")} ${options.dryRun ? "to move" : "moved"}`);
        if (interrupt.requested) interrupted = true;
      } while (cursor !== "0" && !interrupted);
      if (interrupted) break;
    }
  } finally {
    progress.stop();
    await report.close();
  }
  if (!interrupted) state?.remove();
  return { counts, interrupted };
}

/** GET and PTTL of each key on the node that holds it (one pipeline), converted; problems reported. */
async function readAndConvert(
  node: Redis,
  keys: Buffer[],
  options: MigrateOptions,
  counts: MigrateCounts,
  report: ProblemReport,
): Promise<SessionImport[]> {
  if (keys.length === 0) return [];
  const pipeline = node.pipeline();
  for (const key of keys) pipeline.getBuffer(key).pttl(key);
  pipeline.time();
  const replies = (await pipeline.exec())!;
  const [seconds, micros] = replies[replies.length - 1][1] as [string, string];
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);

  const sessions: SessionImport[] = [];
  keys.forEach((keyBytes, i) => {
    counts.keys++;
    const [getError, value] = replies[2 * i] as [Error | null, Buffer | null];
    const pttl = Number(replies[2 * i + 1][1]);
    let key = keyBytes.toString("latin1");
    try {
      key = decode(keyBytes, "key");
      if (getError !== null) throw new InputProblem(`cannot be read as a string (${getError.message.split("\n")[0]})`);
      if (value === null || pttl === -2) {
        counts.expired++; // expired between the scan and the read
        return;
      }
      const conversion = convertLegacy({ key, value: decode(value, "value"), pttl, now }, options.legacy);
      if (conversion === undefined) {
        counts.ownLayout++;
        return;
      }
      sessions.push(conversion.session);
      if (conversion.notes.length > 0) {
        counts.noted++;
        report.note({ key }, conversion.notes.join("; "));
      }
    } catch (error) {
      if (!(error instanceof InputProblem)) throw error;
      counts.bad++;
      report.problem({ key }, error.message);
    }
  });
  return sessions;
}

function decode(bytes: Buffer, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new InputProblem(`${what} is not UTF-8`);
  }
}

function count(counts: MigrateCounts, status: ImportStatus): void {
  if (status === ImportStatus.Written) counts.written++;
  else if (status === ImportStatus.Unchanged) counts.unchanged++;
  else if (status === ImportStatus.Exists) counts.kept++;
  else if (status === ImportStatus.NotNewer) counts.notNewer++;
  else if (status === ImportStatus.Expired) counts.expired++;
  else throw new Error(`import script answered ${String(status)}`);
}
