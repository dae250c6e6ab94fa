import type { SessionRecord, SessionRef, SessionWrite, WriteLimits } from "./session-record";

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

  /** Replaces the whole context (omitted fields become empty), keeping `storedAt` of an existing session. */
  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord>;

  /** Shallow-merges the objects and appends the lists, atomically; creates the session when absent. */
  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord>;

  /** Resolves when the store answers; rejects with ServiceUnavailableError otherwise. For `/health/ready`. */
  ping(): Promise<void>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}
