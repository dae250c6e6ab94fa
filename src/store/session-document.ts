import type { ContextFields, SessionRecord, SessionRef } from "../sessions/session-record";
import { sessionKey } from "./keys";

/**
 * The JSON document kept under a session key. Both stores use this layout, and the Redis write script relies on
 * it: the four numeric header fields come first and in this order, then the four context fields, all written
 * by `JSON.stringify` (no white space), so the script can splice the context fields as text without ever
 * decoding user values. That is what keeps numbers, unicode and empty containers exact.
 *
 * Last comes a trailer, `"spans":[csBytes,iqBytes,iqCount,riBytes,riCount]`: the UTF-8 byte lengths of the
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
  return encodeDocumentText(doc, {
    conversationState: JSON.stringify(doc.conversationState),
    interruptedQueries: JSON.stringify(doc.interruptedQueries),
    interruptedCount: doc.interruptedQueries.length,
    recentInteractions: JSON.stringify(doc.recentInteractions),
    recentCount: doc.recentInteractions.length,
    userPreferences: JSON.stringify(doc.userPreferences),
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
  const bytes = (text: string) => Buffer.byteLength(text, "utf8"); // what Lua's # counts
  const spans = [bytes(cs), bytes(iq), texts.interruptedCount, bytes(ri), texts.recentCount];
  return (
    `{"version":${header.version},"storedAt":${header.storedAt},"lastUpdated":${header.lastUpdated},` +
    `"ttlSeconds":${header.ttlSeconds},"conversationState":${cs},"interruptedQueries":${iq},` +
    `"recentInteractions":${ri},"userPreferences":${up},"spans":[${spans.join(",")}]}`
  );
}

/**
 * A document without its spans trailer: `{"version":…,"userPreferences":{…}}`, the part that is the session's
 * data (the trailer only describes it). Documents written before the trailer existed come back as they are.
 */
export function withoutSpans(document: string): string {
  const trailer = SPANS_TRAILER.exec(document);
  return trailer === null ? document : `${document.slice(0, trailer.index)}}`;
}

const SPANS_TRAILER = /,"spans":\[\d+,\d+,\d+,\d+,\d+\]\}$/;

export function decodeDocument(text: string): SessionDocument {
  return JSON.parse(text) as SessionDocument;
}

/** The record's fields that come from the document's numeric header and the key. */
function recordHeader(
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

// The numeric header every document starts with (see SessionDocument): enough for a record without the context.
const HEADER = /^\{"version":(\d+),"storedAt":(\d+),"lastUpdated":(\d+),"ttlSeconds":(\d+),"conversationState":/;

/**
 * The record of a document the write script just wrote, with the four context fields parsed on first use: a
 * write's answer usually selects only `version`, `lastUpdated` and the like, and parsing the whole document for
 * those was about 4 % of the server's CPU per write. Reads parse eagerly (`toRecord`), so a damaged document
 * fails at the field that read it.
 */
export function toRecordParsingContextLazily(tenantId: string, ref: SessionRef, text: string): SessionRecord {
  const header = HEADER.exec(text);
  if (header === null) return toRecord(tenantId, ref, decodeDocument(text));
  let doc: SessionDocument | undefined;
  const context = () => (doc ??= decodeDocument(text));
  const lazily = <K extends keyof SessionDocument>(field: K) => ({ get: () => context()[field], enumerable: true });
  return Object.defineProperties(
    recordHeader(
      tenantId,
      ref,
      {
        version: Number(header[1]),
        storedAt: Number(header[2]),
        lastUpdated: Number(header[3]),
        ttlSeconds: Number(header[4]),
      },
      sessionKey(tenantId, ref.userId, ref.sessionId),
    ),
    {
      conversationState: lazily("conversationState"),
      interruptedQueries: lazily("interruptedQueries"),
      recentInteractions: lazily("recentInteractions"),
      userPreferences: lazily("userPreferences"),
    },
  ) as SessionRecord;
}

/** The newest `cap` entries of a list (lists are appended in order, so the newest are at the end). */
export function newest<T>(list: readonly T[], cap: number): T[] {
  return list.length > cap ? list.slice(list.length - cap) : [...list];
}
