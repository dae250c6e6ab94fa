import { createWriteStream, existsSync, statSync, truncateSync } from "node:fs";
import { once } from "node:events";
import type { Writable } from "node:stream";
import type { RedisSessionTransfer } from "../store/redis/redis-session-transfer";
import { exportLine } from "./export-line";
import type { CommandDeps, RunResult } from "./import-command";
import { RunState } from "./run-state";

export interface ExportOptions {
  readonly tenantId: string;
  /** Only this user's sessions. */
  readonly userId: string | undefined;
  /** The NDJSON file; undefined: standard output (then there is no resuming). */
  readonly out: string | undefined;
  /** Replace an existing file that is not an unfinished export. */
  readonly force: boolean;
  /** Index entries asked for per ZSCAN step; sessions are read in script calls of at most 100. */
  readonly batch: number;
}

export interface ExportCounts {
  sessions: number;
  /** Index entries whose session had expired (or was deleted) by the time it was read. */
  gone: number;
}

interface ExportState {
  command: "export";
  tenantId: string;
  userId: string | null;
  cursor: string;
  bytes: number;
  counts: ExportCounts;
}

/** Why a command cannot run as asked (exit 2, like a usage error). */
export class CommandRefused extends Error {}

const SESSIONS_PER_READ = 100;

/**
 * `export`: every session of a tenant (or one user) as NDJSON (export-line.ts), in bounded steps: ZSCAN over the
 * tenant's own index (never KEYS or a keyspace SCAN; all in the tenant's slot), then the sessions of each step read
 * whole by export-sessions.lua. Memory holds one step. After each step it saves the ZSCAN cursor and the bytes
 * written beside the file (`<file>.export-state.json`); an interrupted export cuts the file back to that length
 * and goes on from that cursor, so no line is written twice.
 */
export async function runExport(
  options: ExportOptions,
  transfer: RedisSessionTransfer,
  deps: CommandDeps,
): Promise<RunResult<ExportCounts>> {
  const { progress, interrupt } = deps;
  const { tenantId, userId, out } = options;
  const state = out === undefined ? undefined : new RunState<ExportState>(`${out}.export-state.json`);
  const saved = state?.read((s) => s.command === "export" && s.tenantId === tenantId && s.userId === (userId ?? null));
  if (out !== undefined && saved === undefined && existsSync(out) && !options.force)
    throw new CommandRefused(`${out} exists and is no unfinished export of this tenant: remove it or give --force`);

  let stream: Writable = process.stdout;
  if (out !== undefined) {
    if (saved !== undefined) {
      if (statSync(out).size < saved.bytes)
        throw new Error(`${out} is shorter than when the export stopped; start over with --force`);
      truncateSync(out, saved.bytes);
    }
    stream = createWriteStream(out, { flags: saved === undefined ? "w" : "a" });
    stream.on("error", () => {}); // each write's callback gets the error and fails the run with it
  }
  const counts: ExportCounts = saved?.counts ?? { sessions: 0, gone: 0 };
  let cursor = saved?.cursor ?? "0";
  let bytes = saved?.bytes ?? 0;
  let interrupted = false;

  progress.start(await transfer.indexSize(tenantId, userId), counts.sessions + counts.gone, "sessions");
  if (saved !== undefined) progress.log(`export: going on after ${counts.sessions.toLocaleString("en")} sessions`);
  try {
    do {
      const page = await transfer.scanIndex(tenantId, userId, cursor, options.batch);
      let text = "";
      for (let i = 0; i < page.members.length; i += SESSIONS_PER_READ) {
        const sessions = await transfer.read(tenantId, page.members.slice(i, i + SESSIONS_PER_READ));
        for (const session of sessions) {
          if (session === null) {
            counts.gone++;
            continue;
          }
          text += `${exportLine({ tenantId, ...session })}\n`;
          counts.sessions++;
        }
      }
      await write(stream, text);
      bytes += Buffer.byteLength(text);
      cursor = page.cursor;
      if (cursor !== "0") state?.save({ command: "export", tenantId, userId: userId ?? null, cursor, bytes, counts });
      progress.update(counts.sessions + counts.gone, "");
      if (cursor !== "0" && interrupt.requested) interrupted = true;
    } while (cursor !== "0" && !interrupted);
  } finally {
    progress.stop();
    if (out !== undefined) await close(stream);
  }
  if (!interrupted) state?.remove();
  return { counts, interrupted };
}

/** Writes `text` and waits until the stream has handed it on (to the file), so a saved state never runs ahead. */
async function write(stream: Writable, text: string): Promise<void> {
  if (text === "") return;
  await new Promise<void>((resolve, reject) => stream.write(text, (error) => (error ? reject(error) : resolve())));
  if (stream.writableNeedDrain) await once(stream, "drain");
}

function close(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
}
