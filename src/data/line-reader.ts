import type { Readable } from "node:stream";

/** One line of an NDJSON input, or a line that was too long to hold (its text dropped, its number kept). */
export interface InputLine {
  /** 1-based, counted from the start of the file (a resumed read goes on counting). */
  readonly number: number;
  /** The line without its line break (and without a trailing `\r`); undefined when it was over the limit. */
  readonly text: string | undefined;
  /** Byte offset just after this line's line break: where a resumed read starts. */
  readonly end: number;
}

/**
 * Splits a byte stream into lines without ever holding more than one line plus one chunk: a line over `maxBytes` is
 * skipped to its end and yielded without its text, so one huge line cannot exhaust memory. Splits on byte 0x0A,
 * which never occurs inside a UTF-8 character, and decodes each line once. `start`/`firstNumber`: where the stream
 * begins in the file, for a resumed read.
 */
export async function* readLines(
  input: Readable,
  maxBytes: number,
  start = 0,
  firstNumber = 1,
): AsyncGenerator<InputLine> {
  let parts: Buffer[] = [];
  let held = 0;
  let tooLong = false;
  let offset = start;
  let number = firstNumber;

  const finish = (tail: Buffer, end: number): InputLine => {
    let text: string | undefined;
    if (!tooLong) {
      let bytes = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
      if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
      text = bytes.toString("utf8");
    }
    const line = { number: number++, text, end };
    parts = [];
    held = 0;
    tooLong = false;
    return line;
  };

  for await (const chunk of input as AsyncIterable<Buffer>) {
    let from = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, from);
      if (newline < 0) break;
      const piece = chunk.subarray(from, newline);
      if (held + piece.length > maxBytes) tooLong = true;
      offset += newline - from + 1;
      yield finish(piece, offset);
      from = newline + 1;
    }
    const rest = chunk.subarray(from);
    offset += rest.length;
    if (tooLong || held + rest.length > maxBytes) {
      tooLong = true;
      parts = [];
      held = 0;
    } else if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0 || tooLong) yield finish(Buffer.alloc(0), offset);
}
