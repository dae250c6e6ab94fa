import type { Actor, ContextFields, JsonObject, JsonValue } from "../sessions/session-record";
import { VersionNotKeptError } from "./version-not-kept.error";

/** What produced a version. */
export type SessionOperationName = "STORE" | "MERGE" | "RESTORE";

/** How to turn a list field back into what it was before a merge appended to it. */
type ListUndo = [oldCount: number, droppedFromOld: JsonValue[]];
/** How to turn an object field back: each merged key with the value it had, or alone when it was new. */
type ObjectUndo = ([key: string, oldValue: JsonValue] | [key: string])[];

/**
 * One entry of a session's change log, as both stores keep it (JSON text; the Redis write script builds it by
 * concatenation, so the property order below is the layout). `change` is what the write was given; `undo` is what
 * it replaced, enough to go from this version's context back to the one before it:
 *
 * - a store or restore: `{"replaced": <the previous context's four fields>}`, or `{"created": true}` when there was
 *   none;
 * - a merge: per merged field, `conversationState`/`userPreferences`: `[[key, oldValue] | [key], …]` (an entry
 *   without an old value: the key was new); `interruptedQueries`/`recentInteractions`: `[oldCount, [dropped…]]` —
 *   the list's length before, and the entries the cap pushed out of it.
 *
 * So an entry costs what the write changed — what it added and what it replaced — plus a fixed header, never a copy
 * of the whole context (except for a store, which does replace the whole context).
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
  change: JsonObject;
  undo: { replaced: ContextFields } | { created: true } | MergeUndo;
}

interface MergeUndo {
  conversationState?: ObjectUndo;
  interruptedQueries?: ListUndo;
  recentInteractions?: ListUndo;
  userPreferences?: ObjectUndo;
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
      change: entry.change,
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
  return {
    conversationState: undoObject(after.conversationState, undoOf.conversationState),
    interruptedQueries: undoList(after.interruptedQueries, undoOf.interruptedQueries) as string[],
    recentInteractions: undoList(after.recentInteractions, undoOf.recentInteractions) as JsonObject[],
    userPreferences: undoObject(after.userPreferences, undoOf.userPreferences),
  };
}

function undoObject(after: JsonObject, undoOf: ObjectUndo | undefined): JsonObject {
  if (undoOf === undefined) return after;
  const before: JsonObject = { ...after }; // spread copies own keys as data, "__proto__" included
  for (const pair of undoOf) {
    if (pair.length === 2) define(before, pair[0], pair[1]);
    else delete before[pair[0]];
  }
  return before;
}

function undoList(after: readonly JsonValue[], undoOf: ListUndo | undefined): readonly JsonValue[] {
  if (undoOf === undefined) return after;
  const [oldCount, dropped] = undoOf;
  return [...dropped, ...after.slice(0, oldCount - dropped.length)];
}

/** Sets `key` as an own data property, so that "__proto__" stays a key and never changes a prototype. */
function define(target: JsonObject, key: string, value: JsonValue): void {
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
