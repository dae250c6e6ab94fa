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
  return `${tenantPrefix(tenantId)}user:${escapeId(userId)}:session:${escapeId(sessionId)}`;
}
