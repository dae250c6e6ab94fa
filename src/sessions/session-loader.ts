import DataLoader from "dataloader";
import { sessionKey } from "../store/keys";
import type { SessionRecord, SessionRef } from "./session-record";
import type { SessionStore } from "./session-store";

/** Most sessions one request may read; the store sees them in one batch. */
export const MAX_SESSION_READS_PER_REQUEST = 100;

export type SessionLoader = DataLoader<SessionRef, SessionRecord | null, string>;

/**
 * Per-request loader of one tenant's sessions: every read of a request (aliases, `_entities`) is collected in
 * the same tick and sent to the store as one batch, so one round trip (MGET).
 */
export function createSessionLoader(store: SessionStore, tenantId: string): SessionLoader {
  return new DataLoader<SessionRef, SessionRecord | null, string>((refs) => store.getMany(tenantId, refs), {
    cacheKeyFn: (ref) => sessionKey(tenantId, ref.userId, ref.sessionId),
    maxBatchSize: MAX_SESSION_READS_PER_REQUEST,
  });
}

/** After a write, later reads in the same request see what was written, without asking the store. */
export function primeSession(loader: SessionLoader, record: SessionRecord): void {
  const ref = { userId: record.userId, sessionId: record.sessionId };
  loader.clear(ref).prime(ref, record);
}
