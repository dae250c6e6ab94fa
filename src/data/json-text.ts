/**
 * JSON text rewritten exactly as JSON.stringify would write it, but keeping the source's key order.
 *
 * Why not JSON.stringify(JSON.parse(text)): a JavaScript object puts integer-like keys ("1", "42") before the
 * others, so a context whose keys a merge appended in another order (the write script splices text) would come
 * back reordered, and a legacy value written by Python would lose its order. The data tool writes what it read,
 * byte for byte, whenever the source already was canonical; this scanner makes any other valid JSON canonical
 * (white space dropped, strings and numbers as JSON.stringify spells them) without going through objects.
 *
 * It walks the text with its own stack (no recursion: no input can overflow it), refuses what JSON.parse refuses,
 * and also refuses duplicate keys (which of two values would a merge see?) and numbers outside a double's range
 * (`1e400`). Integers that a double cannot hold exactly (`12345678901234567`) become the nearest double, as they
 * do through the API; they are counted in `roundedNumbers` so that a caller can say so.
 */

/** The type of a JSON value. */
export type JsonType = "object" | "array" | "string" | "number" | "boolean" | "null";

/** A value directly inside the scanned one: an object's member (with its key) or an array's entry. */
export interface JsonChild {
  /** The member's key (decoded); undefined for an array entry. */
  readonly key?: string;
  readonly text: string;
  readonly type: JsonType;
}

export interface CanonicalJson {
  readonly text: string;
  readonly type: JsonType;
  /** The members or entries of the top-level value, in order (only when asked for: `children`). */
  readonly children: JsonChild[];
  /** Integers written with more digits than a double holds, now the nearest double. */
  readonly roundedNumbers: number;
}

/** Where and why a text is not JSON the tool accepts. */
export class JsonTextError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
    this.name = "JsonTextError";
  }
}

const WHITE_SPACE = /[ \t\n\r]*/y;
// eslint-disable-next-line no-control-regex -- a JSON string may not hold raw control characters: that is the rule
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const SURROGATE = /[\ud800-\udfff]/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

interface Frame {
  readonly array: boolean;
  /** Offset in the output where this container's text starts. */
  readonly start: number;
  /** Keys seen so far (objects only), to refuse duplicates. */
  readonly keys: Set<string> | undefined;
  /** The key of the member whose value is being read (objects only). */
  key: string | undefined;
  /** Offset in the output where the current member's value starts. */
  valueStart: number;
}

/** Canonical text of the JSON value `source` holds (white space around it allowed); throws JsonTextError. */
export function canonicalJson(source: string, options: { children?: boolean } = {}): CanonicalJson {
  const children: JsonChild[] = [];
  const stack: Frame[] = [];
  let out = "";
  let pos = skipWhiteSpace(source, 0);
  let rounded = 0;
  let rootType: JsonType | undefined;

  const fail = (message: string): never => {
    throw new JsonTextError(message, pos);
  };

  /** A value of `type` that began at `start` in the output has ended. */
  const ended = (type: JsonType, start: number) => {
    if (stack.length === 0) rootType = type;
    else if (stack.length === 1 && options.children) {
      const parent = stack[0];
      children.push({ key: parent.key, text: out.slice(start), type });
    }
  };

  /** Reads `"key":` of an object member at pos and writes its canonical form. */
  const readKey = (frame: Frame) => {
    if (source.charCodeAt(pos) !== 0x22) fail("expected a string key");
    const raw = matchAt(STRING, source, pos) ?? fail("bad string");
    const key = JSON.parse(raw) as string;
    if (frame.keys!.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
    frame.keys!.add(key);
    frame.key = key;
    pos = skipWhiteSpace(source, pos + raw.length);
    if (source.charCodeAt(pos) !== 0x3a) fail("expected ':'");
    pos = skipWhiteSpace(source, pos + 1);
    out += `${canonicalString(raw)}:`;
    frame.valueStart = out.length;
  };

  for (;;) {
    // A value starts at pos.
    const c = source.charCodeAt(pos);
    if (c === 0x7b || c === 0x5b) {
      const array = c === 0x5b;
      const frame: Frame = {
        array,
        start: out.length,
        keys: array ? undefined : new Set(),
        key: undefined,
        valueStart: out.length + 1,
      };
      out += array ? "[" : "{";
      pos = skipWhiteSpace(source, pos + 1);
      if (source.charCodeAt(pos) === (array ? 0x5d : 0x7d)) {
        out += array ? "]" : "}";
        pos++;
        ended(array ? "array" : "object", frame.start);
      } else {
        stack.push(frame);
        if (!array) readKey(frame);
        continue;
      }
    } else {
      const start = out.length;
      let type: JsonType;
      if (c === 0x22) {
        const raw = matchAt(STRING, source, pos) ?? fail("bad string");
        out += canonicalString(raw);
        pos += raw.length;
        type = "string";
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        NUMBER.lastIndex = pos;
        const match = NUMBER.exec(source) ?? fail("bad number");
        const value = Number(match[0]);
        if (!Number.isFinite(value)) fail("number outside the range of a double");
        if (match[1] === undefined && match[2] === undefined && match[0].length > 15) {
          const exact = BigInt(match[0]);
          if ((exact > MAX_SAFE || exact < -MAX_SAFE) && BigInt(value) !== exact) rounded++;
        }
        out += String(value);
        pos += match[0].length;
        type = "number";
      } else if (source.startsWith("true", pos) || source.startsWith("false", pos)) {
        const word = source.startsWith("true", pos) ? "true" : "false";
        out += word;
        pos += word.length;
        type = "boolean";
      } else if (source.startsWith("null", pos)) {
        out += "null";
        pos += 4;
        type = "null";
      } else {
        fail(pos >= source.length ? "unexpected end" : `unexpected ${JSON.stringify(source[pos])}`);
      }
      ended(type!, start);
    }

    // After a value: a separator, the end of containers, or the end of the text.
    for (;;) {
      pos = skipWhiteSpace(source, pos);
      const frame = stack.at(-1);
      if (frame === undefined) {
        if (pos !== source.length) fail("unexpected text after the value");
        return { text: out, type: rootType!, children, roundedNumbers: rounded };
      }
      const d = source.charCodeAt(pos);
      if (d === 0x2c) {
        out += ",";
        pos = skipWhiteSpace(source, pos + 1);
        if (frame.array) frame.valueStart = out.length;
        else readKey(frame);
        break;
      }
      if (d === (frame.array ? 0x5d : 0x7d)) {
        out += frame.array ? "]" : "}";
        pos++;
        stack.pop();
        ended(frame.array ? "array" : "object", frame.start);
        continue;
      }
      fail(frame.array ? "expected ',' or ']'" : "expected ',' or '}'");
    }
  }
}

function skipWhiteSpace(source: string, pos: number): number {
  WHITE_SPACE.lastIndex = pos;
  WHITE_SPACE.exec(source);
  return WHITE_SPACE.lastIndex;
}

function matchAt(pattern: RegExp, source: string, pos: number): string | undefined {
  pattern.lastIndex = pos;
  return pattern.exec(source)?.[0];
}

/** A JSON string literal as JSON.stringify spells it (only escapes and lone surrogates can differ). */
function canonicalString(raw: string): string {
  if (!raw.includes("\\") && !SURROGATE.test(raw)) return raw;
  return JSON.stringify(JSON.parse(raw) as string);
}
