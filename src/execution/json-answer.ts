import { JsonText } from "./json-text";

/**
 * The JSON text of a GraphQL answer (`{errors, data, extensions}` as given) followed by a newline, exactly as
 * `JSON.stringify(value) + "\n"` — Apollo's own serializer — would write it, except that a JsonText is written as
 * the text it holds. A Buffer when some JsonText holds 8 KB of bytes or more (a Redis read of a large context: the
 * stored bytes go out as they came in, never decoded), else a string.
 *
 * It follows JSON.stringify's rules: `toJSON` first (a Date writes its ISO string), own enumerable keys in their
 * order, `undefined`, functions and symbols left out of objects and written as null in arrays, non-finite numbers
 * as null. It walks what execution built — a handful of objects per answer — in plain JavaScript; user values it
 * meets that are not JsonText (the embedded store's history, say) are walked the same way, correctly if more slowly.
 */
export function writeJsonAnswer(value: unknown): Buffer | string {
  const writer = new AnswerWriter();
  writer.value(value);
  writer.text += "\n";
  return writer.finish();
}

/** writeJsonAnswer without the newline: the payload of a message that has its own framing (a live event). */
export function writeJson(value: unknown): Buffer | string {
  const writer = new AnswerWriter();
  writer.value(value);
  return writer.finish();
}

/**
 * writeJsonAnswer's text as the pieces it is made of, for a writer that can send them one after the other (the
 * HTTP answer of the prepared lane): the stored bytes go out as the pieces they came in, never copied into one
 * buffer. On this kind of machine a fresh 64 KB buffer per answer cost more than its copy — the kernel's page faults
 * for new memory, ~4 per answer. A string when no JsonText held 8 KB of bytes or more.
 */
export function writeJsonAnswerChunks(value: unknown): AnswerChunks | string {
  const writer = new AnswerWriter();
  writer.value(value);
  writer.text += "\n";
  return writer.finishChunks();
}

/** An answer's text in order, in pieces: strings and byte chunks, and their length in bytes. */
export interface AnswerChunks {
  readonly chunks: readonly (Buffer | string)[];
  readonly byteLength: number;
}

/** `writeJsonAnswer` as a string, for writers that insist on one (Apollo's `stringifyResult`). */
export function writeJsonAnswerText(value: unknown): string {
  const answer = writeJsonAnswer(value);
  return typeof answer === "string" ? answer : answer.toString("utf8");
}

/**
 * Bytes shorter than this are decoded into the answer's text instead: for a 1.6 KB context, gathering byte chunks
 * into one buffer cost more (~2 µs per answer) than decoding and encoding them again.
 */
const COPY_BYTES_FROM = 8 * 1024;

/** `"key":` for each key written so far: an answer writes the same few field names over and over. */
const memberPrefixes = new Map<string, string>();
const MAX_MEMBER_PREFIXES = 4096;

const LONGEST_REMEMBERED_KEY = 64;

function memberPrefix(key: string): string {
  let prefix = memberPrefixes.get(key);
  if (prefix === undefined) {
    prefix = `${JSON.stringify(key)}:`;
    // Keys of user JSON pass here too (values that are not JsonText): remember only short ones, and a bounded number.
    if (key.length > LONGEST_REMEMBERED_KEY) return prefix;
    if (memberPrefixes.size >= MAX_MEMBER_PREFIXES) memberPrefixes.clear();
    memberPrefixes.set(key, prefix);
  }
  return prefix;
}

class AnswerWriter {
  /** Text written since the last byte chunk. */
  text = "";
  /** Earlier text and the byte chunks between it, in order; empty while no JsonText held bytes. */
  private readonly chunks: (Buffer | string)[] = [];

  value(value: unknown): void {
    if (value instanceof JsonText) {
      if (typeof value.text === "string") this.text += value.text;
      else if (value.text.length < COPY_BYTES_FROM) this.text += value.text.toString("utf8");
      else {
        if (this.text !== "") this.chunks.push(this.text);
        this.chunks.push(value.text);
        this.text = "";
      }
      return;
    }
    switch (typeof value) {
      case "string":
        this.text += JSON.stringify(value);
        return;
      case "number":
        this.text += Number.isFinite(value) ? JSON.stringify(value) : "null";
        return;
      case "boolean":
        this.text += value ? "true" : "false";
        return;
      case "object":
        if (value === null) this.text += "null";
        // What Date's toJSON gives, without the call and the string escaping (an ISO date needs none): a third of
        // this writer's time for an answer of 20 sessions, each with three dates.
        else if (value instanceof Date)
          this.text += Number.isFinite(value.getTime()) ? `"${value.toISOString()}"` : "null";
        else if (typeof (value as { toJSON?: unknown }).toJSON === "function")
          this.value((value as { toJSON(): unknown }).toJSON());
        else if (Array.isArray(value)) this.list(value);
        else this.object(value as Record<string, unknown>);
        return;
      case "bigint":
        throw new TypeError("Do not know how to serialize a BigInt"); // as JSON.stringify
      default:
        this.text += "null"; // undefined, a function or a symbol where a value must be: JSON.stringify writes null
    }
  }

  private list(values: readonly unknown[]): void {
    this.text += "[";
    for (let i = 0; i < values.length; i++) {
      if (i > 0) this.text += ",";
      this.value(values[i]);
    }
    this.text += "]";
  }

  private object(object: Record<string, unknown>): void {
    this.text += "{";
    let first = true;
    for (const key of Object.keys(object)) {
      const member = object[key];
      if (member === undefined || typeof member === "function" || typeof member === "symbol") continue;
      this.text += first ? memberPrefix(key) : `,${memberPrefix(key)}`;
      first = false;
      this.value(member);
    }
    this.text += "}";
  }

  finish(): Buffer | string {
    const answer = this.finishChunks();
    if (typeof answer === "string") return answer;
    const bytes = Buffer.allocUnsafe(answer.byteLength);
    let at = 0;
    for (const chunk of answer.chunks)
      at += typeof chunk === "string" ? bytes.write(chunk, at, "utf8") : chunk.copy(bytes, at);
    return bytes;
  }

  finishChunks(): AnswerChunks | string {
    if (this.chunks.length === 0) return this.text;
    if (this.text !== "") this.chunks.push(this.text);
    let byteLength = 0;
    for (const chunk of this.chunks)
      byteLength += typeof chunk === "string" ? Buffer.byteLength(chunk, "utf8") : chunk.length;
    return { chunks: this.chunks, byteLength };
  }
}
