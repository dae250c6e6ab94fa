import { createWriteStream, type WriteStream } from "node:fs";

/**
 * Inputs that were not written, and why: one line each on the progress stream (`line 12: …`, `key "…": …`) and,
 * with a report file, one JSON object per line (`{"line":12,"reason":"…"}`, `{"key":"…","reason":"…"}`), plus
 * notes on inputs that were written with something filled in or changed (`"note"` instead of `"reason"`).
 */
export class ProblemReport {
  private readonly file: WriteStream | undefined;
  problems = 0;
  notes = 0;

  /** `append`: a resumed run adds to the report of the run it continues. */
  constructor(
    private readonly show: (line: string) => void,
    path: string | undefined,
    append: boolean,
  ) {
    this.file = path === undefined ? undefined : createWriteStream(path, { flags: append ? "a" : "w" });
  }

  problem(where: { line: number } | { key: string }, reason: string): void {
    this.problems++;
    this.show(`${"line" in where ? `line ${where.line}` : `key ${JSON.stringify(where.key)}`}: ${reason}`);
    this.file?.write(`${JSON.stringify({ ...where, reason })}\n`);
  }

  /** Something filled in or changed on a written input: in the report file only (not worth a line on screen). */
  note(where: { line: number } | { key: string }, note: string): void {
    this.notes++;
    this.file?.write(`${JSON.stringify({ ...where, note })}\n`);
  }

  close(): Promise<void> {
    const file = this.file;
    if (file === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}
