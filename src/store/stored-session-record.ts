import { JsonText } from "../execution/json-text";
import type { JsonObject, SessionRecord, SessionRef, StoredContext } from "../sessions/session-record";
import { sessionKey } from "./keys";
import { decodeDocument, recordHeader, toRecord, type SessionDocument } from "./session-document";

/**
 * A session record read from its stored document without parsing the context: the header comes from the document's
 * first bytes, the context fields are slices of the document found through its `spans` trailer (session-document.ts),
 * kept as JsonText for answers that copy them (`stored`), and parsed one field at a time only when something reads
 * that field as a value (a subscription's answer, the history, a test).
 *
 * A document whose layout does not check out — no trailer (written before it existed), or delimiters not where the
 * spans say — is parsed whole, as before (toRecord). The field texts themselves are trusted: only this service's
 * write script and encoder write documents, both canonical.
 */
export function readDocument(
  tenantId: string,
  ref: SessionRef,
  document: Buffer | string,
  key = sessionKey(tenantId, ref.userId, ref.sessionId),
): SessionRecord {
  const bytes = typeof document === "string" ? Buffer.from(document, "utf8") : document;
  const layout = layoutOf(bytes);
  if (layout === undefined)
    return toRecord(
      tenantId,
      ref,
      decodeDocument(typeof document === "string" ? document : bytes.toString("utf8")),
      key,
    );
  return new StoredSessionRecord(tenantId, ref, key, layout);
}

/**
 * The record of a write whose reply held only the new document's header (SessionWrite.returnContext false): its
 * context fields were not sent back, and reading one is a bug — it throws rather than answer something made up.
 */
export function readWrittenHeader(tenantId: string, ref: SessionRef, bytes: Buffer): SessionRecord {
  const header = HEADER_ONLY.exec(bytes.toString("latin1"));
  if (header === null) throw new Error("the write script answered no document header");
  const fields = recordHeader(tenantId, ref, headerOf(header), sessionKey(tenantId, ref.userId, ref.sessionId));
  return Object.assign(Object.create(CONTEXT_NOT_SENT) as object, fields) as SessionRecord;
}
const notSent = (): never => {
  throw new Error("this write's context was not sent back (returnContext: false) and cannot be read");
};
const CONTEXT_NOT_SENT = Object.defineProperties(
  {},
  {
    conversationState: { get: notSent },
    interruptedQueries: { get: notSent },
    recentInteractions: { get: notSent },
    userPreferences: { get: notSent },
  },
);

/** The header and the four field slices of a document with the current layout. */
interface DocumentLayout {
  readonly header: Pick<SessionDocument, "version" | "storedAt" | "lastUpdated" | "ttlSeconds">;
  readonly conversationState: Buffer;
  readonly interruptedQueries: Buffer;
  readonly recentInteractions: Buffer;
  readonly userPreferences: Buffer;
}

// The numeric header every document starts with (SessionDocument): at most ~110 bytes. A write's header-only reply
// is exactly this part.
const HEADER_FIELDS = String.raw`\{"version":(\d+),"storedAt":(\d+),"lastUpdated":(\d+),"ttlSeconds":(\d+),`;
const HEADER = new RegExp(`^${HEADER_FIELDS}"conversationState":`);
const HEADER_ONLY = new RegExp(`^${HEADER_FIELDS}$`);

function headerOf(match: RegExpExecArray): DocumentLayout["header"] {
  return {
    version: Number(match[1]),
    storedAt: Number(match[2]),
    lastUpdated: Number(match[3]),
    ttlSeconds: Number(match[4]),
  };
}
const HEADER_BYTES_AT_MOST = 160;
const INTERRUPTED = Buffer.from(',"interruptedQueries":');
const RECENT = Buffer.from(',"recentInteractions":');
const PREFERENCES = Buffer.from(',"userPreferences":');
const ENTRIES = Buffer.from(',"entries":"');
const SPANS = Buffer.from(',"spans":[');
const SPAN_NUMBERS = /^(\d+),(\d+),(\d+),(\d+),(\d+)(?:,(\d+))?\]\}$/;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function layoutOf(bytes: Buffer): DocumentLayout | undefined {
  const header = HEADER.exec(bytes.toString("latin1", 0, Math.min(bytes.length, HEADER_BYTES_AT_MOST)));
  const spansAt = bytes.lastIndexOf(SPANS);
  if (header === null || spansAt < 0) return undefined;
  const spans = SPAN_NUMBERS.exec(bytes.toString("latin1", spansAt + SPANS.length));
  if (spans === null) return undefined;
  const [csBytes, iqBytes, , riBytes] = spans.slice(1, 5).map(Number);
  // Six spans: the entries index sits between userPreferences and the spans, `,"entries":"<index>"`.
  const upEnd = spans[6] === undefined ? spansAt : spansAt - ENTRIES.length - Number(spans[6]) - 1;

  const csAt = header[0].length; // the header is ASCII: its characters are its bytes
  const iqAt = csAt + csBytes + INTERRUPTED.length;
  const riAt = iqAt + iqBytes + RECENT.length;
  const upAt = riAt + riBytes + PREFERENCES.length;
  const fits =
    upAt < upEnd &&
    at(bytes, csAt + csBytes, INTERRUPTED) &&
    at(bytes, iqAt + iqBytes, RECENT) &&
    at(bytes, riAt + riBytes, PREFERENCES) &&
    (spans[6] === undefined || at(bytes, upEnd, ENTRIES)) &&
    bytes[csAt] === OPEN_BRACE &&
    bytes[csAt + csBytes - 1] === CLOSE_BRACE &&
    bytes[riAt] === OPEN_BRACKET &&
    bytes[riAt + riBytes - 1] === CLOSE_BRACKET &&
    bytes[upAt] === OPEN_BRACE &&
    bytes[upEnd - 1] === CLOSE_BRACE;
  if (!fits) return undefined;
  return {
    header: headerOf(header),
    conversationState: bytes.subarray(csAt, csAt + csBytes),
    interruptedQueries: bytes.subarray(iqAt, iqAt + iqBytes),
    recentInteractions: bytes.subarray(riAt, riAt + riBytes),
    userPreferences: bytes.subarray(upAt, upEnd),
  };
}

/** Whether `bytes` holds `expected` at `offset`. */
function at(bytes: Buffer, offset: number, expected: Buffer): boolean {
  return (
    offset >= 0 &&
    offset + expected.length <= bytes.length &&
    bytes.compare(expected, 0, expected.length, offset, offset + expected.length) === 0
  );
}

const parsed = <T>(bytes: Buffer): T => JSON.parse(bytes.toString("utf8")) as T;

/**
 * A record over a document's slices. The context fields are getters on the prototype (parsed on first read, then
 * kept), so building a record costs no more than a plain object — `Object.defineProperties` with four lazy
 * accessors cost ~6 µs per record here. They are not own properties: spread a record and they are left behind (its
 * own `stored` and `interruptedText` hold the same, as text).
 */
class StoredSessionRecord implements SessionRecord {
  readonly id!: string;
  readonly tenantId!: string;
  readonly userId!: string;
  readonly sessionId!: string;
  readonly version!: number;
  readonly storedAt!: Date;
  readonly lastUpdated!: Date;
  readonly ttlSeconds!: number;
  readonly expiresAt!: Date;
  readonly stored: StoredContext;
  readonly interruptedText: Buffer;
  // Private fields (#): the parsed values are a cache, not part of the record (Object.keys, toEqual leave them out).
  #state?: JsonObject;
  #interrupted?: string[];
  #recent?: JsonObject[];
  #preferences?: JsonObject;

  constructor(tenantId: string, ref: SessionRef, key: string, layout: DocumentLayout) {
    Object.assign(this, recordHeader(tenantId, ref, layout.header, key));
    this.stored = {
      conversationState: new JsonText(layout.conversationState),
      recentInteractions: new JsonText(layout.recentInteractions),
      userPreferences: new JsonText(layout.userPreferences),
    };
    this.interruptedText = layout.interruptedQueries;
  }

  get conversationState(): JsonObject {
    return (this.#state ??= parsed(this.stored.conversationState.text as Buffer));
  }

  get interruptedQueries(): string[] {
    return (this.#interrupted ??= parsed(this.interruptedText));
  }

  get recentInteractions(): JsonObject[] {
    return (this.#recent ??= parsed(this.stored.recentInteractions.text as Buffer));
  }

  get userPreferences(): JsonObject {
    return (this.#preferences ??= parsed(this.stored.userPreferences.text as Buffer));
  }
}

const CHANGE_PARTS = ["conversationState", "interruptedQueries", "recentInteractions", "userPreferences"].map(
  (name, i) => Buffer.from(`${i === 0 ? "{" : ","}"${name}":`),
);
const CLOSE = Buffer.from("}");

/**
 * The record's four context fields as one JSON object's text, copied from the stored slices in stored order (what a
 * store's change is when its announcement leaves it out); undefined for a record that was parsed, not sliced.
 */
export function storedContextText(record: SessionRecord): JsonText | undefined {
  if (!(record instanceof StoredSessionRecord)) return undefined;
  const { stored } = record;
  const fields = [
    stored.conversationState.text,
    record.interruptedText,
    stored.recentInteractions.text,
    stored.userPreferences.text,
  ] as Buffer[];
  return new JsonText(Buffer.concat([...fields.flatMap((field, i) => [CHANGE_PARTS[i], field]), CLOSE]));
}
