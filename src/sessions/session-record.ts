import type { JsonText } from "../execution/json-text";

/** A JSON value as the contract stores it: anything `JSON.parse` can return. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Which session of the caller's tenant: tenant is never part of a ref, it always comes from the caller. */
export interface SessionRef {
  readonly userId: string;
  readonly sessionId: string;
}

/** The four fields a client writes. */
export interface ContextFields {
  conversationState: JsonObject;
  interruptedQueries: string[];
  recentInteractions: JsonObject[];
  userPreferences: JsonObject;
}

/** One stored session as the stores return it. */
export interface SessionRecord extends ContextFields {
  /** Stable and opaque, unique per (tenant, user, session): what Apollo Client normalizes on. */
  readonly id: string;
  readonly tenantId: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly version: number;
  readonly storedAt: Date;
  readonly lastUpdated: Date;
  readonly ttlSeconds: number;
  readonly expiresAt: Date;
  /**
   * The context fields' stored texts, when the record was read from a stored document (stored-session-record.ts):
   * an answer written by writeJsonAnswer copies them instead of serializing the parsed values.
   */
  readonly stored?: StoredContext;
}

/** The stored JSON texts of the context fields an answer can copy (interruptedQueries, a list of GraphQL strings, cannot). */
export interface StoredContext {
  readonly conversationState: JsonText;
  readonly recentInteractions: JsonText;
  readonly userPreferences: JsonText;
}

/** Who writes: the caller's user id and roles, as the change log records them. */
export interface Actor {
  readonly userId: string;
  readonly roles: readonly string[];
}

/** The writer the log records for a write no caller made (tools, tests that use a store directly). */
export const SYSTEM_ACTOR: Actor = Object.freeze({ userId: "system", roles: Object.freeze([]) as readonly string[] });

/** A store or merge: fields left undefined are `{}`/`[]` for a store and unchanged for a merge. */
export interface SessionWrite extends Partial<ContextFields> {
  /** Who writes, as the change log records it; default SYSTEM_ACTOR (the service's own tools, not a caller). */
  readonly actor?: Actor;
  /** Expiry to set; undefined keeps the session's own TTL setting, else the tenant default. */
  readonly ttlSeconds?: number;
  /** When given, the write happens only if the stored version equals it (absent session = 0). */
  readonly expectedVersion?: number;
  /**
   * false: the caller reads only the written record's header (version, dates, TTL, ids), so a store may skip sending
   * the context back — the record's context fields then must not be read. Default true.
   */
  readonly returnContext?: boolean;
}

/**
 * What bounds a write apart from the tenant's settings: the configured MAX_CONTEXT_BYTES. The TTL and list caps of a
 * tenant that has not set its own are the store's tenant defaults, given to its constructor.
 */
export interface WriteLimits {
  readonly maxContextBytes: number;
}
