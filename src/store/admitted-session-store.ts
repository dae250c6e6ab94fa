import { ServiceUnavailableError } from "../errors/errors";
import type { SessionRecord, SessionRef, SessionWrite, WriteLimits } from "../sessions/session-record";
import type {
  PageCursor,
  SessionHistoryPage,
  SessionIndexPage,
  SessionRestore,
  SessionStore,
} from "../sessions/session-store";

/** Why a store call was refused before it was sent. */
export type Refusal = "in_flight" | "tenant_writes";

/** Options of AdmittedSessionStore. */
export interface AdmissionOptions {
  /**
   * Store commands this process may have in flight (REDIS_MAX_IN_FLIGHT, default 1000). A call that finds this
   * many is refused at once, SERVICE_UNAVAILABLE with `retryable: true`, and sends nothing.
   */
  readonly maxInFlight: number;
  /**
   * Writes (store, merge, restore) of one tenant this process runs at once (TENANT_WRITES_IN_FLIGHT, default 256).
   * One more is refused at once, SERVICE_UNAVAILABLE with `retryable: true`; other tenants are not affected.
   */
  readonly tenantWritesInFlight: number;
  /**
   * Store commands in flight now: for Redis, the commands sent and not answered yet, those that timed out on our
   * side included (Backend.commandsInFlight: they hold their arguments until Redis answers or the connection
   * drops). Default: the calls this store let through that have not ended.
   */
  readonly inFlight?: () => number;
  /** Told of each refusal (metrics). */
  readonly refused?: (reason: Refusal) => void;
}

/**
 * The process's session store behind two bounds, checked before anything is sent (ping and close pass through):
 *
 * - **in flight**: once the store has `maxInFlight` commands unanswered — Redis stalled under load, say — every call
 *   fails at once instead of queueing more, so memory stays bounded and the server answers within the fail-fast
 *   bound; as soon as Redis answers, the backlog drains and calls go through again;
 * - **per tenant**: a tenant with `tenantWritesInFlight` writes running on this process gets its next write refused,
 *   so one tenant's burst of writes cannot take all of the process's store capacity from the others.
 */
export class AdmittedSessionStore implements SessionStore {
  private running = 0;
  private readonly tenantWrites = new Map<string, number>();
  private readonly inFlight: () => number;

  constructor(
    private readonly inner: SessionStore,
    private readonly options: AdmissionOptions,
  ) {
    this.inFlight = options.inFlight ?? (() => this.running);
  }

  get kind(): string {
    return this.inner.kind;
  }

  /** Writes of `tenantId` running now (tests, metrics). */
  writesInFlight(tenantId: string): number {
    return this.tenantWrites.get(tenantId) ?? 0;
  }

  getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    return this.admit(() => this.inner.getMany(tenantId, refs));
  }

  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.admitWrite(tenantId, () => this.inner.store(tenantId, ref, write, limits));
  }

  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.admitWrite(tenantId, () => this.inner.merge(tenantId, ref, write, limits));
  }

  restore(tenantId: string, ref: SessionRef, restore: SessionRestore, limits: WriteLimits): Promise<SessionRecord> {
    return this.admitWrite(tenantId, () => this.inner.restore(tenantId, ref, restore, limits));
  }

  history(tenantId: string, ref: SessionRef, first: number, before?: number): Promise<SessionHistoryPage> {
    return this.admit(() => this.inner.history(tenantId, ref, first, before));
  }

  deleteSession(tenantId: string, ref: SessionRef): Promise<boolean> {
    return this.admit(() => this.inner.deleteSession(tenantId, ref));
  }

  deleteUserSessions(tenantId: string, userId: string): Promise<number> {
    return this.admit(() => this.inner.deleteUserSessions(tenantId, userId));
  }

  listUserSessions(tenantId: string, userId: string, first: number, after?: PageCursor): Promise<SessionIndexPage> {
    return this.admit(() => this.inner.listUserSessions(tenantId, userId, first, after));
  }

  purgeOrphans(tenantId: string, olderThanSeconds: number): Promise<number> {
    return this.admit(() => this.inner.purgeOrphans(tenantId, olderThanSeconds));
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async admit<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlight() >= this.options.maxInFlight) {
      return this.refuse(
        "in_flight",
        `the session store has ${this.options.maxInFlight} commands in flight on this server (REDIS_MAX_IN_FLIGHT); nothing was sent — retry shortly`,
      );
    }
    this.running++;
    try {
      return await work();
    } finally {
      this.running--;
    }
  }

  private async admitWrite<T>(tenantId: string, work: () => Promise<T>): Promise<T> {
    const writes = this.tenantWrites.get(tenantId) ?? 0;
    if (writes >= this.options.tenantWritesInFlight) {
      return this.refuse(
        "tenant_writes",
        `this tenant has ${this.options.tenantWritesInFlight} writes in flight on this server (TENANT_WRITES_IN_FLIGHT); nothing was written — retry shortly`,
      );
    }
    this.tenantWrites.set(tenantId, writes + 1);
    try {
      return await this.admit(work);
    } finally {
      const left = (this.tenantWrites.get(tenantId) ?? 1) - 1;
      if (left === 0) this.tenantWrites.delete(tenantId);
      else this.tenantWrites.set(tenantId, left);
    }
  }

  private refuse(reason: Refusal, message: string): Promise<never> {
    this.options.refused?.(reason);
    return Promise.reject(new ServiceUnavailableError(message, false, true));
  }
}
