import { createReadStream, statSync } from "node:fs";
import type { Readable } from "node:stream";
import type { ImportMode, RedisSessionTransfer } from "../store/redis/redis-session-transfer";
import { ImportStatus } from "../store/redis/redis-scripts";
import { parseExportLine } from "./export-line";
import type { Interrupt } from "./interrupt";
import { readLines } from "./line-reader";
import type { Progress } from "./progress";
import { ProblemReport } from "./report";
import { RunState } from "./run-state";
import { InputProblem, type ImportLimits, type SessionImport } from "./session-import";

export interface ImportOptions {
  /** The export file; undefined: standard input (then there is no resuming). */
  readonly input: string | undefined;
  readonly mode: ImportMode;
  /** Sessions written at once (one script call each, sent together). */
  readonly batch: number;
  readonly report: string | undefined;
  /** Ignore a saved state and start from the first line. */
  readonly restart: boolean;
  readonly limits: ImportLimits;
  /** Longest line read (longer ones are reported and skipped). */
  readonly maxLineBytes: number;
}

/** What happened to the lines of an import. */
export interface ImportCounts {
  lines: number;
  written: number;
  /** Already there as in the file. */
  unchanged: number;
  /** "skip": another state of the session was there. */
  kept: number;
  /** "newer": the session there was as new or newer. */
  notNewer: number;
  /** Their expiry had passed. */
  expired: number;
  /** Bad lines, reported and skipped. */
  bad: number;
}

export interface CommandDeps {
  readonly progress: Progress;
  readonly interrupt: Interrupt;
}

export interface RunResult<C> {
  readonly counts: C;
  /** Stopped by an interrupt before the end: run the same command again to go on. */
  readonly interrupted: boolean;
}

interface ImportState {
  command: "import";
  size: number;
  offset: number;
  line: number;
  counts: ImportCounts;
}

/**
 * `import`: writes the sessions of an export file, a batch at a time, each session in one atomic script step
 * (import-session-7.lua). After each batch it saves the byte offset it reached beside the file
 * (`<file>.import-state.json`), so an interrupted import goes on from there; and since a session already there as
 * in the file is left alone (`unchanged`), a repeated batch or a repeated import changes nothing.
 */
export async function runImport(
  options: ImportOptions,
  transfer: RedisSessionTransfer,
  deps: CommandDeps,
): Promise<RunResult<ImportCounts>> {
  const { progress, interrupt } = deps;
  const state =
    options.input === undefined ? undefined : new RunState<ImportState>(`${options.input}.import-state.json`);
  const size = options.input === undefined ? undefined : statSync(options.input).size;
  const saved = options.restart ? undefined : state?.read((s) => s.command === "import");
  if (saved !== undefined && saved.offset > size!)
    throw new Error(`${options.input} is shorter than when the import stopped; start over with --restart`);
  const counts: ImportCounts = saved?.counts ?? {
    lines: 0,
    written: 0,
    unchanged: 0,
    kept: 0,
    notNewer: 0,
    expired: 0,
    bad: 0,
  };
  const report = new ProblemReport((line) => progress.log(line), options.report, saved !== undefined);
  const input: Readable =
    options.input === undefined ? process.stdin : createReadStream(options.input, { start: saved?.offset ?? 0 });

  let offset = saved?.offset ?? 0;
  progress.start(size, offset, "bytes");
  if (saved !== undefined) progress.log(`import: going on from line ${saved.line + 1} (byte ${saved.offset})`);
  let line = saved?.line ?? 0;
  let batch: { session: SessionImport; line: number }[] = [];
  let interrupted = false;

  const flush = async () => {
    const statuses = await Promise.all(batch.map(({ session }) => transfer.write(session, options.mode)));
    for (const status of statuses) count(counts, status);
    batch = [];
    state?.save({ command: "import", size: size!, offset, line, counts });
    progress.update(offset, `${counts.written.toLocaleString("en")} written`);
  };

  try {
    for await (const next of readLines(input, options.maxLineBytes, offset, line + 1)) {
      line = next.number;
      offset = next.end;
      if (next.text === undefined) {
        counts.lines++;
        counts.bad++;
        report.problem({ line: next.number }, `longer than ${options.maxLineBytes} bytes`);
      } else if (next.text.trim() !== "") {
        counts.lines++;
        try {
          batch.push({ session: parseExportLine(next.text, options.limits), line: next.number });
        } catch (error) {
          if (!(error instanceof InputProblem)) throw error;
          counts.bad++;
          report.problem({ line: next.number }, error.message);
        }
      }
      if (batch.length >= options.batch) {
        await flush();
        if (interrupt.requested) {
          interrupted = true;
          break;
        }
      }
    }
    if (!interrupted) {
      await flush();
      state?.remove();
    }
  } finally {
    input.destroy();
    progress.stop();
    await report.close();
  }
  return { counts, interrupted };
}

function count(counts: ImportCounts, status: ImportStatus): void {
  switch (status) {
    case ImportStatus.Written:
      counts.written++;
      break;
    case ImportStatus.Unchanged:
      counts.unchanged++;
      break;
    case ImportStatus.Exists:
      counts.kept++;
      break;
    case ImportStatus.NotNewer:
      counts.notNewer++;
      break;
    case ImportStatus.Expired:
      counts.expired++;
      break;
    default:
      throw new Error(`import script answered ${String(status)}`);
  }
}
