import type { Actor, ContextFields, JsonObject, JsonValue } from "../sessions/session-record";
import { VersionNotKeptError } from "./version-not-kept.error";

/** What produced a version. */
export type SessionOperationName = "STORE" | "MERGE" | "RESTORE";

/** How to turn a list field back into what it was before a merge appended to it. */
type ListUndo = [oldCount: number, droppedFromOld: JsonValue[]];
/**
 * How to turn an object field back: the merged keys that were there with the values they had (the keys the merge
 * added are in MergeUndo.added). Entries written before that form: each merged key with the value it had, or alone
 * when it was new.
 */
type ObjectUndo = JsonObject | ([key: string, oldValue: JsonValue] | [key: string])[];

/**
 * One entry of a session's change log, as both stores keep it (JSON text; the Redis write script builds it by
 * concatenation, so the property order below is the layout). `change` is what the write was given; `undo` is what
 * it replaced, enough to go from this version's context back to the one before it:
 *
 * - a store or restore: `{"replaced": <the previous context's four fields>}`, or `{"created": true}` when there was
 *   none;
 * - a merge: per merged field, `conversationState`/`userPreferences`: `{key: oldValue, …}`, the keys it replaced
 *   with their old values, and under `added` the keys that were new (`"added":{"conversationState":[key, …]}`);
 *   `interruptedQueries`/`recentInteractions`: `[oldCount, [dropped…]]` — the list's length before, and the entries
 *   the cap pushed out of it. Entries written before the object form hold `[[key, oldValue] | [key], …]` (a key
 *   alone was new), and are read as well.
 *
 * A store's change is the context it left, unless the caps dropped list entries it was given: so a store's entry
 * has no `change` (it is worked out from the version's context) unless they did. Entries written before that hold
 * it always.
 *
 * So an entry costs what the write changed — what it added and what it replaced — plus a fixed header, never a copy
 * of the whole context (except for a store's undo, which does replace the whole context).
 */
export interface HistoryEntry {
  version: number;
  /** Redis time (epoch ms) of the write. */
  at: number;
  operation: SessionOperationName;
  actor: string;
  roles: string[];
  /** The TTL the write set. */
  ttlSeconds: number;
  /** Absent for a store whose change is the context it left (see above). */
  change?: JsonObject;
  undo: { replaced: ContextFields } | { created: true } | MergeUndo;
}

interface MergeUndo {
  conversationState?: ObjectUndo;
  interruptedQueries?: ListUndo;
  recentInteractions?: ListUndo;
  userPreferences?: ObjectUndo;
  /** The keys a merge added to each object field (none: the member is absent). */
  added?: { conversationState?: string[]; userPreferences?: string[] };
}

/** One kept version, resolved: the entry with the whole context as it was right after its write. */
export interface SessionVersion {
  readonly version: number;
  readonly at: Date;
  readonly operation: SessionOperationName;
  readonly actorUserId: string;
  readonly actorRoles: readonly string[];
  readonly change: JsonObject;
  readonly context: ContextFields & { ttlSeconds: number };
}

/**
 * A store's change when its entry (or announcement) does not carry it: the context it left, as the change of a
 * store lists it.
 */
export function contextChange(fields: ContextFields): JsonObject {
  return {
    conversationState: fields.conversationState,
    interruptedQueries: fields.interruptedQueries,
    recentInteractions: fields.recentInteractions,
    userPreferences: fields.userPreferences,
  };
}

/** The writer as the entry's `"actor":…,"roles":[…]` members (JSON.stringify escapes them). */
export function actorMembers(actor: Actor): string {
  return `"actor":${JSON.stringify(actor.userId)},"roles":${JSON.stringify(actor.roles)}`;
}

export function decodeHistoryEntry(text: string): HistoryEntry {
  return JSON.parse(text) as HistoryEntry;
}

/**
 * The kept versions, newest first, each with its whole context: `current` is the session's context now (the
 * version of `entries[0]`), `entries` the log newest first, contiguous (each one version below the one before).
 * Walks back from the current context through each entry's undo.
 */
export function resolveVersions(current: ContextFields, entries: readonly HistoryEntry[]): SessionVersion[] {
  const versions: SessionVersion[] = [];
  let context = copyFields(current);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    versions.push({
      version: entry.version,
      at: new Date(entry.at),
      operation: entry.operation,
      actorUserId: entry.actor,
      actorRoles: entry.roles,
      change: entry.change ?? contextChange(context),
      context: { ...copyFields(context), ttlSeconds: entry.ttlSeconds },
    });
    if (i + 1 < entries.length) context = undo(context, entry.undo);
  }
  return versions;
}

/**
 * One page of a session's kept versions, newest first, below `before` when given: from the session's document and
 * its log entries (newest first), as both stores read them.
 */
export function historyPage(
  document: ContextFields,
  entries: readonly HistoryEntry[],
  first: number,
  before: number | undefined,
): { versions: SessionVersion[]; hasNextPage: boolean } {
  const versions = resolveVersions(document, entries).filter(
    (version) => before === undefined || version.version < before,
  );
  return { versions: versions.slice(0, first), hasNextPage: versions.length > first };
}

/** The context fields of `version` in `versions`; VersionNotKeptError when the log does not keep it. */
export function keptFields(versions: readonly SessionVersion[], version: number): ContextFields {
  const kept = versions.find((candidate) => candidate.version === version);
  if (kept === undefined) throw new VersionNotKeptError(version);
  const { ttlSeconds: _keptTtl, ...fields } = kept.context;
  return fields;
}

/** The context before the write that `undoOf` belongs to, from the context right after it. */
function undo(after: ContextFields, undoOf: HistoryEntry["undo"]): ContextFields {
  if ("replaced" in undoOf) return copyFields(undoOf.replaced);
  if ("created" in undoOf)
    return { conversationState: {}, interruptedQueries: [], recentInteractions: [], userPreferences: {} };
  const { added } = undoOf;
  return {
    conversationState: undoObject(after.conversationState, undoOf.conversationState, added?.conversationState),
    interruptedQueries: undoList(after.interruptedQueries, undoOf.interruptedQueries) as string[],
    recentInteractions: undoList(after.recentInteractions, undoOf.recentInteractions) as JsonObject[],
    userPreferences: undoObject(after.userPreferences, undoOf.userPreferences, added?.userPreferences),
  };
}

function undoObject(after: JsonObject, undoOf: ObjectUndo | undefined, added: string[] | undefined): JsonObject {
  if (undoOf === undefined) return after;
  const before: JsonObject = { ...after }; // spread copies own keys as data, "__proto__" included
  if (Array.isArray(undoOf)) {
    for (const pair of undoOf) {
      if (pair.length === 2) define(before, pair[0], pair[1]);
      else delete before[pair[0]];
    }
  } else {
    // JSON.parse made undoOf's keys own data properties, "__proto__" included; Object.keys lists them all.
    for (const key of Object.keys(undoOf)) define(before, key, undoOf[key]);
  }
  for (const key of added ?? []) delete before[key];
  return before;
}

function undoList(after: readonly JsonValue[], undoOf: ListUndo | undefined): readonly JsonValue[] {
  if (undoOf === undefined) return after;
  const [oldCount, dropped] = undoOf;
  return [...dropped, ...after.slice(0, oldCount - dropped.length)];
}

/** Sets `key` as an own data property, so that "__proto__" stays a key and never changes a prototype. */
export function define(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function copyFields(fields: ContextFields): ContextFields {
  return {
    conversationState: fields.conversationState,
    interruptedQueries: fields.interruptedQueries,
    recentInteractions: fields.recentInteractions,
    userPreferences: fields.userPreferences,
  };
}
