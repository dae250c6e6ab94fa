import type { SessionVersion } from "../history/history-entry";
import type { Actor, SessionRecord, SessionRef, SessionWrite, WriteLimits } from "./session-record";

/** A position in a user's session list: the last write (ms) and index member of the last entry shown. */
export interface PageCursor {
  readonly lastUpdated: number;
  readonly member: string;
}

/** One page of a user's sessions, newest last write first, read with the index in one round trip. */
export interface SessionIndexPage {
  /** `record` is null for a session that expired between the index read and the session read. */
  readonly entries: readonly {
    readonly ref: SessionRef;
    readonly cursor: PageCursor;
    readonly record: SessionRecord | null;
  }[];
  readonly hasNextPage: boolean;
  /** The user's live sessions (entries of expired ones are dropped before counting). */
  readonly totalCount: number;
}

/** One page of a session's kept versions, newest first. */
export interface SessionHistoryPage {
  readonly versions: readonly SessionVersion[];
  readonly hasNextPage: boolean;
}

/** A restore: back to `version`, as a new write. */
export interface SessionRestore {
  readonly version: number;
  readonly actor: Actor;
  readonly expectedVersion?: number;
}

/**
 * Where session contexts are kept. Every method takes the caller's tenant first; implementations build keys only
 * through `store/keys.ts`, so no two (tenant, user, session) can meet.
 *
 * Errors: `ConflictError` on an `expectedVersion` mismatch, `ContextTooLargeError` when the context after the
 * write would exceed `maxContextBytes` (in both cases nothing is written), `ServiceUnavailableError` when the
 * backing store cannot be reached in time.
 */
export interface SessionStore {
  /** `"redis"` or `"memory"`, for logs and the start-up warning. */
  readonly kind: string;

  /** Batch read for the loader: result[i] answers refs[i]; a missing or expired session is null. One round trip. */
  getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]>;

  /**
   * Replaces the whole context (omitted fields become empty), keeping `storedAt` of an existing session. The
   * session and its index entries change in one atomic step. A tenant that has not set its own TTL and list caps
   * gets the store's defaults; `limits` bounds the context's size.
   */
  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord>;

  /** Shallow-merges the objects and appends the lists, atomically; creates the session when absent. */
  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord>;

  /**
   * Up to `first` kept versions of a session, newest first, below version `before` when given; each with the whole
   * context right after its write. An absent session has none. One round trip.
   */
  history(tenantId: string, ref: SessionRef, first: number, before?: number): Promise<SessionHistoryPage>;

  /**
   * Makes the context what it was at a kept version, as a new write (version + 1, logged as RESTORE) with the
   * caps and size limit of a store; the session's TTL setting stays. `BadUserInputError` on `version` when it is
   * not kept; `ConflictError` on an `expectedVersion` mismatch.
   */
  restore(tenantId: string, ref: SessionRef, restore: SessionRestore, limits: WriteLimits): Promise<SessionRecord>;

  /** Deletes one session, its change log and its index entries; true when it existed. */
  deleteSession(tenantId: string, ref: SessionRef): Promise<boolean>;

  /** Deletes every session of one user and the user's indexes; returns how many sessions existed. */
  deleteUserSessions(tenantId: string, userId: string): Promise<number>;

  /** A page of one user's sessions, newest last write first, after `after` when given. */
  listUserSessions(tenantId: string, userId: string, first: number, after?: PageCursor): Promise<SessionIndexPage>;

  /**
   * Deletes the tenant's sessions with no write for `olderThanSeconds`, reading only the activity index in bounded
   * batches, and drops index entries of sessions that already expired. Returns the sessions deleted.
   */
  purgeOrphans(tenantId: string, olderThanSeconds: number): Promise<number>;

  /** Resolves when the store answers; rejects with ServiceUnavailableError otherwise. For `/health/ready`. */
  ping(): Promise<void>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}

/**
 * Whether the store answers its ping within `timeoutMs`: what /health/ready and the `session_store_up` gauge report.
 * Never rejects.
 */
export async function storeAnswers(store: Pick<SessionStore, "ping">, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([store.ping().then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
