import type { Redis } from "ioredis";
import type { GraphQLResponse } from "./test-server";

/** Every field of a SessionContext, for documents that check a whole session. */
export const SESSION_FIELDS = `
  id tenantId userId sessionId conversationState interruptedQueries recentInteractions userPreferences
  storedAt lastUpdated expiresAt ttlSeconds version
`;

export const STORE = `mutation Store($input: SessionContextInput!) {
  storeSessionContext(input: $input) { ${SESSION_FIELDS} }
}`;

export const MERGE = `mutation Merge($input: SessionContextInput!) {
  mergeSessionContext(input: $input) { ${SESSION_FIELDS} }
}`;

export const READ = `query Read($sessionId: ID!, $userId: ID) {
  sessionContext(sessionId: $sessionId, userId: $userId) { ${SESSION_FIELDS} }
}`;

export const ENTITIES = `query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) { ... on SessionContext { ${SESSION_FIELDS} } }
}`;

/** The `extensions.code` of every error of a response, in order. */
export function errorCodes(response: GraphQLResponse<unknown>): unknown[] {
  return (response.body.errors ?? []).map((error) => error.extensions?.code);
}

/**
 * The contract's key of one session. The ids the tests use are letters, digits and `-` only, which the contract
 * promises appear in keys verbatim, so the layout is written out here rather than borrowed from src/.
 */
export function sessionKeyOf(tenantId: string, userId: string, sessionId: string): string {
  return `tenant:{${tenantId}}:user:${userId}:session:${sessionId}`;
}

/** Every key of one tenant, found with SCAN (never KEYS) on its prefix. */
export async function tenantKeys(admin: Redis, tenantId: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `tenant:{${tenantId}}:*`, "COUNT", 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== "0");
  return found.sort();
}

/** The tenant's session keys only (its index and settings keys left out). */
export async function tenantSessionKeys(admin: Redis, tenantId: string): Promise<string[]> {
  return (await tenantKeys(admin, tenantId)).filter((key) => key.includes(":session:"));
}

/** A GET /graphql request with the query (and variables) in the URL. */
export async function getGraphQL<T = Record<string, unknown>>(
  baseUrl: string,
  params: { query: string; variables?: Record<string, unknown>; operationName?: string },
  headers: Record<string, string> = {},
): Promise<GraphQLResponse<T>> {
  const url = new URL("/graphql", baseUrl);
  url.searchParams.set("query", params.query);
  if (params.variables) url.searchParams.set("variables", JSON.stringify(params.variables));
  if (params.operationName) url.searchParams.set("operationName", params.operationName);
  const response = await fetch(url, { headers });
  return { status: response.status, headers: response.headers, body: (await response.json()) as never };
}

/** Milliseconds `action` took, with its result. */
export async function timed<T>(action: () => Promise<T>): Promise<{ result: T; elapsedMs: number }> {
  const started = performance.now();
  const result = await action();
  return { result, elapsedMs: performance.now() - started };
}
