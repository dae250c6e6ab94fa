import type { Redis } from "ioredis";
import {
  activityIndexKey,
  expiryIndexKey,
  indexMember,
  sessionKey,
  userExpiryKey,
  userIndexKey,
} from "../../src/store/keys";
import type { GraphQLResponse } from "./test-server";

/** What Redis holds for one session: the raw document and its entry in each of the four indexes. */
export interface StoredSession {
  document: string | null;
  activity: string | null;
  expiry: string | null;
  userSessions: string | null;
  userExpiry: string | null;
}

/** Reads a session's document and index scores straight from Redis, to prove a failed write changed none of them. */
export async function storedSession(
  admin: Redis,
  tenantId: string,
  userId: string,
  sessionId: string,
): Promise<StoredSession> {
  const member = indexMember(userId, sessionId);
  const [document, activity, expiry, userSessions, userExpiry] = await Promise.all([
    admin.get(sessionKey(tenantId, userId, sessionId)),
    admin.zscore(activityIndexKey(tenantId), member),
    admin.zscore(expiryIndexKey(tenantId), member),
    admin.zscore(userIndexKey(tenantId, userId), member),
    admin.zscore(userExpiryKey(tenantId, userId), member),
  ]);
  return { document, activity, expiry, userSessions, userExpiry };
}

/** The one error of a failed response, with its code and whether a write's outcome is unknown. */
export function onlyError(response: GraphQLResponse<unknown>): { code: unknown; outcomeUnknown: unknown } {
  const errors = response.body.errors ?? [];
  if (errors.length !== 1) throw new Error(`expected one error, got ${JSON.stringify(response.body)}`);
  return { code: errors[0].extensions?.code, outcomeUnknown: errors[0].extensions?.outcomeUnknown };
}

/** Samples `value()` every `intervalMs` until stopped; `stop()` resolves with the largest sample. */
export function sampleMax(value: () => number, intervalMs = 10): { stop(): number } {
  let max = value();
  const timer = setInterval(() => (max = Math.max(max, value())), intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, value());
    },
  };
}
