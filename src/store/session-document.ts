import type { ContextFields, SessionRecord, SessionRef } from "../sessions/session-record";
import { sessionKey } from "./keys";

/**
 * The JSON document kept under a session key. Both stores use this layout, and the Redis write script relies on
 * it: the four numeric header fields come first and in this order, then the four context fields, all written
 * by `JSON.stringify` (no white space), so the script can splice the context fields as text without ever
 * decoding user values. That is what keeps numbers, unicode and empty containers exact.
 *
 * Before it, `"entries":"<conversationState index>;<userPreferences index>;<interruptedQueries index>;
 * <recentInteractions index>"` (one string): each object field's entry index (indexedObject), so that a merge in Redis
 * slices the stored objects' entries instead of scanning their values, and each list's (indexedList: each entry's
 * byte length in 8 digits), so that a list cap drops the oldest entries by adding up their lengths instead of
 * scanning them; the spans then end with a sixth number, the index's byte length (write-session-7.lua, "Why the
 * entries index"). Documents written before the lists' indexes hold the first two.
 *
 * Last comes a trailer, `"spans":[csBytes,iqBytes,iqCount,riBytes,riCount,entriesBytes]`: the UTF-8 byte lengths of the
 * conversationState, interruptedQueries and recentInteractions texts and the entry counts of the two lists. With
 * it a merge in Redis slices the stored fields at known offsets and knows the lists' lengths, instead of scanning
 * the whole document (measured on 1.7 KB documents: a typical merge's Redis CPU from 73 to 39 µs per call). Documents
 * without it (written before it existed) stay valid: the script then scans. Readers ignore it: `toRecord` picks
 * the fields it returns, so `spans` never reaches GraphQL, and it is not part of the context's size.
 */
export interface SessionDocument extends ContextFields {
  version: number;
  storedAt: number; // epoch ms
  lastUpdated: number; // epoch ms
  ttlSeconds: number;
}

/**
 * Bytes of `{"conversationState":,"interruptedQueries":,"recentInteractions":,"userPreferences":}` — the JSON
 * of the four fields minus their values. A context's size is this plus the byte lengths of the four values.
 */
export const CONTEXT_JSON_OVERHEAD = Buffer.byteLength(
  '{"conversationState":,"interruptedQueries":,"recentInteractions":,"userPreferences":}',
);

/** UTF-8 bytes of the JSON of the four context fields: what MAX_CONTEXT_BYTES limits. */
export function contextBytes(fields: ContextFields): number {
  return Buffer.byteLength(JSON.stringify(contextOnly(fields)), "utf8");
}

function contextOnly(fields: ContextFields): ContextFields {
  return {
    conversationState: fields.conversationState,
    interruptedQueries: fields.interruptedQueries,
    recentInteractions: fields.recentInteractions,
    userPreferences: fields.userPreferences,
  };
}

export function encodeDocument(doc: SessionDocument): string {
  // Property order is the layout the write script matches and writes; keep it in step with write-session-7.lua.
  // Byte for byte what JSON.stringify of the whole object gives, plus the spans trailer that needs each part's length.
  const cs = indexedObject(doc.conversationState);
  const up = indexedObject(doc.userPreferences);
  const iq = indexedList(doc.interruptedQueries);
  const ri = indexedList(doc.recentInteractions);
  return encodeDocumentText(doc, {
    conversationState: cs.text,
    conversationStateIndex: cs.index,
    interruptedQueries: iq.text,
    interruptedCount: doc.interruptedQueries.length,
    interruptedQueriesIndex: iq.index,
    recentInteractions: ri.text,
    recentCount: doc.recentInteractions.length,
    recentInteractionsIndex: ri.index,
    userPreferences: up.text,
    userPreferencesIndex: up.index,
  });
}

/** The four context fields as canonical JSON texts (what JSON.stringify writes), with the two lists' lengths. */
export interface ContextTexts {
  readonly conversationState: string;
  readonly interruptedQueries: string;
  readonly interruptedCount: number;
  readonly recentInteractions: string;
  readonly recentCount: number;
  readonly userPreferences: string;
  /** The entry indexes (indexedObject, indexedList), when the writer has them; otherwise found from the texts. */
  readonly conversationStateIndex?: string;
  readonly userPreferencesIndex?: string;
  readonly interruptedQueriesIndex?: string;
  readonly recentInteractionsIndex?: string;
}

/**
 * The document from its header and the context fields' texts, for writers that hold the texts rather than values
 * (the data tool keeps a field's key order and numbers exactly as they came). The texts must be canonical
 * (JSON.stringify's output: no white space, its escapes): the write script compares and splices them as text.
 */
export function encodeDocumentText(
  header: Pick<SessionDocument, "version" | "storedAt" | "lastUpdated" | "ttlSeconds">,
  texts: ContextTexts,
): string {
  const { conversationState: cs, interruptedQueries: iq, recentInteractions: ri, userPreferences: up } = texts;
  const entries = [
    texts.conversationStateIndex ?? entryIndexOfText(cs),
    texts.userPreferencesIndex ?? entryIndexOfText(up),
    texts.interruptedQueriesIndex ?? listIndexOfText(iq),
    texts.recentInteractionsIndex ?? listIndexOfText(ri),
  ].join(";");
  const bytes = (text: string) => Buffer.byteLength(text, "utf8"); // what Lua's # counts
  const spans = [bytes(cs), bytes(iq), texts.interruptedCount, bytes(ri), texts.recentCount, entries.length];
  return (
    `{"version":${header.version},"storedAt":${header.storedAt},"lastUpdated":${header.lastUpdated},` +
    `"ttlSeconds":${header.ttlSeconds},"conversationState":${cs},"interruptedQueries":${iq},` +
    `"recentInteractions":${ri},"userPreferences":${up},"entries":"${entries}","spans":[${spans.join(",")}]}`
  );
}

/**
 * An object field as the write script takes it: its JSON text (what JSON.stringify gives) and its entry index, the
 * byte lengths of each top-level key text and value text in order (`k,v,k,v,…`), so that the script never scans the
 * values to find the entries (write-session-7.lua, "Why the entries index"). `undefined`: not given ("", "").
 */
export function indexedObject(value: Readonly<Record<string, unknown>> | undefined): { text: string; index: string } {
  if (value === undefined) return { text: "", index: "" };
  const parts: string[] = [];
  const index: number[] = [];
  for (const [key, entry] of Object.entries(value)) {
    const valueText = JSON.stringify(entry) as string | undefined;
    if (valueText === undefined) continue; // JSON.stringify leaves such a key out too
    const keyText = JSON.stringify(key);
    parts.push(`${keyText}:${valueText}`);
    index.push(Buffer.byteLength(keyText, "utf8"), Buffer.byteLength(valueText, "utf8"));
  }
  return { text: `{${parts.join(",")}}`, index: index.join(",") };
}

/** The entry index (indexedObject) of a canonical JSON object text, found by scanning its top level once. */
export function entryIndexOfText(text: string): string {
  const index: number[] = [];
  let i = 1;
  while (i < text.length - 1) {
    const keyEnd = stringEnd(text, i);
    const valueEnd = valueEndAt(text, keyEnd + 2);
    index.push(
      Buffer.byteLength(text.slice(i, keyEnd + 1), "utf8"),
      Buffer.byteLength(text.slice(keyEnd + 2, valueEnd + 1), "utf8"),
    );
    i = valueEnd + 2;
  }
  return index.join(",");
}

/**
 * A list field as the write script takes it: its JSON text (what JSON.stringify gives) and its entry index, the byte
 * length of each entry text in order, each in LIST_LENGTH_DIGITS zero-padded digits with no separator, so that a
 * list cap drops entries without the script scanning them or reading the lengths of the entries it keeps
 * (write-session-7.lua, "Why the entries index"). `undefined`: not given ("", "").
 */
export function indexedList(list: readonly unknown[] | undefined): { text: string; index: string } {
  if (list === undefined) return { text: "", index: "" };
  // JSON.stringify writes null for an entry it cannot write (undefined, a function), as it does inside an array.
  const texts = list.map((entry) => (JSON.stringify(entry) as string | undefined) ?? "null");
  return { text: `[${texts.join(",")}]`, index: texts.map((text) => listLength(Buffer.byteLength(text))).join("") };
}

/** Digits of each length in a list's entry index: an entry is at most MAX_CONTEXT_BYTES (64 MiB at most) long. */
export const LIST_LENGTH_DIGITS = 8;
const listLength = (bytes: number) => String(bytes).padStart(LIST_LENGTH_DIGITS, "0");

/** The entry index (indexedList) of a canonical JSON array text, found by scanning its top level once. */
export function listIndexOfText(text: string): string {
  const index: string[] = [];
  let i = 1;
  while (i < text.length - 1) {
    const valueEnd = valueEndAt(text, i);
    index.push(listLength(Buffer.byteLength(text.slice(i, valueEnd + 1), "utf8")));
    i = valueEnd + 2;
  }
  return index.join("");
}

/** Index of the closing quote of the JSON string that opens at `i`. */
function stringEnd(text: string, i: number): number {
  for (let p = i + 1; ; p++) {
    if (text[p] === "\\") p++;
    else if (text[p] === '"') return p;
  }
}

/** Index of the last character of the JSON value that starts at `i`. */
function valueEndAt(text: string, i: number): number {
  const first = text[i];
  if (first === '"') return stringEnd(text, i);
  if (first !== "{" && first !== "[") {
    let p = i;
    while (p + 1 < text.length && !",}]".includes(text[p + 1])) p++;
    return p;
  }
  let depth = 0;
  for (let p = i; ; p++) {
    const c = text[p];
    if (c === '"') p = stringEnd(text, p);
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return p;
    }
  }
}

/**
 * A document without its spans trailer (and the entry index before it): `{"version":…,"userPreferences":{…}}`, the part that is the session's
 * data (the trailer only describes it). Documents written before the trailer existed come back as they are.
 */
export function withoutSpans(document: string): string {
  const trailer = SPANS_TRAILER.exec(document);
  return trailer === null ? document : `${document.slice(0, trailer.index)}}`;
}

// The spans, with the entry index before them when the document has one (six spans).
const SPANS_TRAILER = /(?:,"entries":"[\d,;]*")?,"spans":\[\d+,\d+,\d+,\d+,\d+(?:,\d+)?\]\}$/;

export function decodeDocument(text: string): SessionDocument {
  return JSON.parse(text) as SessionDocument;
}

/** The record's fields that come from the document's numeric header and the key. */
export function recordHeader(
  tenantId: string,
  ref: SessionRef,
  header: Pick<SessionDocument, "version" | "storedAt" | "lastUpdated" | "ttlSeconds">,
  key: string,
) {
  return {
    // The key is already unique per (tenant, user, session); base64url makes it opaque and URL-safe.
    id: Buffer.from(key).toString("base64url"),
    tenantId,
    userId: ref.userId,
    sessionId: ref.sessionId,
    version: header.version,
    storedAt: new Date(header.storedAt),
    lastUpdated: new Date(header.lastUpdated),
    ttlSeconds: header.ttlSeconds,
    // Every write sets the key's expiry to ttlSeconds, so the expiry is exactly one TTL after the last write.
    expiresAt: new Date(header.lastUpdated + header.ttlSeconds * 1000),
  };
}

/** `key`: the session's key when the caller has it already (a read's MGET built it), else made here. */
export function toRecord(
  tenantId: string,
  ref: SessionRef,
  doc: SessionDocument,
  key = sessionKey(tenantId, ref.userId, ref.sessionId),
): SessionRecord {
  return Object.assign(recordHeader(tenantId, ref, doc, key), {
    conversationState: doc.conversationState,
    interruptedQueries: doc.interruptedQueries,
    recentInteractions: doc.recentInteractions,
    userPreferences: doc.userPreferences,
  });
}

/** The newest `cap` entries of a list (lists are appended in order, so the newest are at the end). */
export function newest<T>(list: readonly T[], cap: number): T[] {
  return list.length > cap ? list.slice(list.length - cap) : [...list];
}
