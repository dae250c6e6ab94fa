import { contextChange, type SessionOperationName } from "../history/history-entry";
import type { JsonObject, SessionRecord, SessionRef } from "../sessions/session-record";
import { refFromMember } from "../store/keys";
import { readDocument } from "../store/stored-session-record";

/** A session written: its new version, what the write was given, and the whole context after it. */
export interface SessionUpdated {
  readonly type: "UPDATED";
  readonly ref: SessionRef;
  readonly version: number;
  /** The store's clock at the commit (epoch ms): the document's lastUpdated. */
  readonly at: number;
  readonly operation: SessionOperationName;
  /** What the write was given, as its change log entry records it. */
  readonly change: JsonObject;
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
 * Undefined for a message this version does not know (a newer server's, during a rolling upgrade).
 */
export function decodeChangeMessage(tenantId: string, message: string): SessionChange | undefined {
  const kind = message.slice(0, 2);
  if (kind === "U\n") {
    const [member, operation, change, document] = splitFields(message, 2, 4);
    if (document === undefined) return undefined;
    const ref = refFromMember(member);
    const record = readDocument(tenantId, ref, document);
    return {
      type: "UPDATED",
      ref,
      version: record.version,
      at: record.lastUpdated.getTime(),
      operation: operation as SessionOperationName,
      change: change === "null" ? contextChange(record) : (JSON.parse(change) as JsonObject),
      record,
      storedAt: record.storedAt.getTime(),
    };
  }
  if (kind === "D\n") {
    const [member, version, at] = splitFields(message, 2, 3);
    if (at === undefined) return undefined;
    return { type: "DELETED", ref: refFromMember(member), version: Number(version), at: Number(at) };
  }
  return undefined;
}

/** `count` fields from `start`, split at the first count - 1 line breaks (the last field keeps any that follow). */
function splitFields(message: string, start: number, count: number): string[] {
  const fields: string[] = [];
  let from = start;
  for (let i = 1; i < count; i++) {
    const end = message.indexOf("\n", from);
    if (end < 0) return fields;
    fields.push(message.slice(from, end));
    from = end + 1;
  }
  fields.push(message.slice(from));
  return fields;
}
