/**
 * The only place Redis keys are formatted (the embedded store uses the same names, so both isolate alike).
 *
 * Ids are escaped so that no two different (tenant, user, session) share a key and no id can act as a
 * separator, a Cluster hash tag or a SCAN glob: `%` and the characters `: { } * ? [ ] \` become `%XX`.
 * Escaping `%` itself keeps the mapping one-to-one. Ids of letters, digits, `-`, `_`, `.` and `@` are verbatim.
 */
const SPECIAL = /[%:{}*?[\]\\]/g;

export function escapeId(id: string): string {
  return id.replace(SPECIAL, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/**
 * `tenant:{<tenant>}:…` — the braces are literal: they are the Cluster hash tag, so every key of one tenant
 * lives in one slot and a request's batched reads and atomic scripts stay single-slot.
 */
export function tenantPrefix(tenantId: string): string {
  return `tenant:{${escapeId(tenantId)}}:`;
}

export function sessionKey(tenantId: string, userId: string, sessionId: string): string {
  return `${userSessionKeyPrefix(tenantId, userId)}${escapeId(sessionId)}`;
}

/** What all of one user's session keys start with; the listing script appends a member's session part to it. */
export function userSessionKeyPrefix(tenantId: string, userId: string): string {
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:session:`;
}

/**
 * A session's change log (history): `…:user:<u>:history:<s>`, beside its key `…:user:<u>:session:<s>` and in the
 * same slot, so the write script keeps both in one atomic step.
 */
export function historyKey(tenantId: string, userId: string, sessionId: string): string {
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:history:${escapeId(sessionId)}`;
}

/**
 * Index member of a session: `<escaped user>:<escaped session>`. Escaped ids contain no `:`, so the member
 * splits back into exactly one (user, session).
 */
export function indexMember(userId: string, sessionId: string): string {
  return `${escapeId(userId)}:${escapeId(sessionId)}`;
}

export function refFromMember(member: string): { userId: string; sessionId: string } {
  const colon = member.indexOf(":");
  return { userId: unescapeId(member.slice(0, colon)), sessionId: unescapeId(member.slice(colon + 1)) };
}

export function unescapeId(escaped: string): string {
  return escaped.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The tenant's sessions by last write (sorted set, score = lastUpdated in ms): what orphan cleanup reads. */
export function activityIndexKey(tenantId: string): string {
  return `${tenantPrefix(tenantId)}activity`;
}

/** The tenant's sessions by expiry (sorted set, score = expiresAt in ms): drops entries of expired sessions. */
export function expiryIndexKey(tenantId: string): string {
  return `${tenantPrefix(tenantId)}expiry`;
}

/**
 * One user's sessions by last write. `…:user:<u>:sessions` never equals a session key `…:user:<u>:session:<s>`:
 * the character after `session` differs.
 */
export function userIndexKey(tenantId: string, userId: string): string {
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:sessions`;
}

/** One user's sessions by expiry, so listing can drop expired entries exactly. */
export function userExpiryKey(tenantId: string, userId: string): string {
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:expiry`;
}

/** The tenant's settings and cleanup bookkeeping (hash). */
export function settingsKey(tenantId: string): string {
  return `${tenantPrefix(tenantId)}settings`;
}

/**
 * Keys that belong to no tenant start with `scs:`. The cleanup schedule is one sorted set of tenant ids scored by
 * the next due time (ms); it is the only cross-tenant key, and nothing writes it together with a tenant's keys.
 */
export const CLEANUP_SCHEDULE_KEY = "scs:cleanup:schedule";

/** Lease that keeps two cleanup runs of one tenant from overlapping. */
export function cleanupLeaseKey(tenantId: string): string {
  return `scs:cleanup:lease:${escapeId(tenantId)}`;
}

/**
 * A persisted query's key: Apollo names it `apq:<sha256>` and it lands at `scs:apq:<sha256>`. Persisted queries
 * belong to no tenant.
 */
export function persistedQueryKey(apolloKey: string): string {
  return `scs:${apolloKey}`;
}

/**
 * The pub/sub channel where one user's session writes and deletions are announced (live updates): a shard channel
 * named with the tenant's hash tag, so on a Cluster it lives on the tenant's slot, beside the keys whose writes it
 * announces. `…:user:<u>:changes` is no key: nothing is ever stored under it.
 */
export function changeChannel(tenantId: string, userId: string): string {
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:changes`;
}
