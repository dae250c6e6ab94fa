import { JsonText } from "../execution/json-text";
import { contextChange, type SessionOperationName } from "../history/history-entry";
import type { JsonObject, SessionRecord, SessionRef } from "../sessions/session-record";
import { refFromMember } from "../store/keys";
import { readDocument, storedContextText } from "../store/stored-session-record";

/** A session written: its new version, what the write was given, and the whole context after it. */
export interface SessionUpdated {
  readonly type: "UPDATED";
  readonly ref: SessionRef;
  readonly version: number;
  /** The store's clock at the commit (epoch ms): the document's lastUpdated. */
  readonly at: number;
  readonly operation: SessionOperationName;
  /**
   * What the write was given, as its change log entry records it: from Redis the announcement's JSON text as it came
   * (a JsonText writes itself into an answer, or parses through toJSON), from the embedded store the value.
   */
  readonly change: JsonObject | JsonText;
  readonly record: SessionRecord;
  /** storedAt in ms: tells one life of a session from the next (a session re-created after it expired). */
  readonly storedAt: number;
}

/** A session deleted (explicitly, by purge or by scheduled cleanup): the version it had last. */
export interface SessionDeleted {
  readonly type: "DELETED";
  readonly ref: SessionRef;
  readonly version: number;
  readonly at: number;
}

/** One write or deletion of a session, as a store announces it to live subscribers. Expiry is not announced. */
export type SessionChange = SessionUpdated | SessionDeleted;

/**
 * The Redis announcement's wire format, written by write-session-7.lua and delete-sessions.lua on the user's change
 * channel: fields one per line (JSON text has no raw line breaks, ids no control characters), the last one taking
 * the rest of the message.
 *
 *   U \n <index member> \n <operation> \n <change JSON> \n <document>
 *   D \n <index member> \n <version> \n <epoch ms>
 *
 * A store whose change is the context it left (no list entry dropped by a cap) sends `null` for its change rather
 * than the context a second time: the change is then the document's four fields (history-entry.ts, contextChange).
 *
 * Read as the bytes Redis sent: the document's context and the change stay slices of them (JsonText), copied into
 * each event's answer, never decoded and parsed unless something reads them as values.
 *
 * Undefined for a message this version does not know (a newer server's, during a rolling upgrade).
 */
export function decodeChangeMessage(tenantId: string, message: Buffer): SessionChange | undefined {
  if (message[1] !== LINE_FEED) return undefined;
  if (message[0] === UPDATED) {
    const [member, operation, change, document] = splitFields(message, 4);
    if (document === undefined) return undefined;
    const ref = refFromMember(member.toString("utf8"));
    const record = readDocument(tenantId, ref, document);
    return {
      type: "UPDATED",
      ref,
      version: record.version,
      at: record.lastUpdated.getTime(),
      operation: operation.toString("latin1") as SessionOperationName,
      change: change.equals(NULL) ? (storedContextText(record) ?? contextChange(record)) : new JsonText(change),
      record,
      storedAt: record.storedAt.getTime(),
    };
  }
  if (message[0] === DELETED) {
    const [member, version, at] = splitFields(message, 3);
    if (at === undefined) return undefined;
    return {
      type: "DELETED",
      ref: refFromMember(member.toString("utf8")),
      version: Number(version.toString("latin1")),
      at: Number(at.toString("latin1")),
    };
  }
  return undefined;
}

const NULL = Buffer.from("null");
const LINE_FEED = 0x0a;
const UPDATED = 0x55; // U
const DELETED = 0x44; // D

/** `count` fields after the kind's line, split at the first count - 1 line breaks (the last keeps any that follow). */
function splitFields(message: Buffer, count: number): Buffer[] {
  const fields: Buffer[] = [];
  let from = 2;
  for (let i = 1; i < count; i++) {
    const end = message.indexOf(LINE_FEED, from);
    if (end < 0) return fields;
    fields.push(message.subarray(from, end));
    from = end + 1;
  }
  fields.push(message.subarray(from));
  return fields;
}
