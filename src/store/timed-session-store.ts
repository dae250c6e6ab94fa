import { context as otelContext, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import type { Metrics } from "../metrics/metrics";
import type { SessionRecord, SessionRef, SessionWrite, WriteLimits } from "../sessions/session-record";
import type {
  PageCursor,
  SessionHistoryPage,
  SessionIndexPage,
  SessionRestore,
  SessionStore,
} from "../sessions/session-store";

/**
 * One request's view of the session store: every call is timed into `session_store_command_duration_seconds`
 * and added to the request's store time (the `store` entry of its Server-Timing header). Made per request,
 * cheaply: one object whose methods delegate. With a tracer (tracing on), each call is also a client span
 * `session_store.<command>` under the active span (the root field that made it), with the tenant id and the
 * store kind — never keys or values.
 */
export class TimedSessionStore implements SessionStore {
  /** Milliseconds this request spent waiting on the store. */
  storeMs = 0;

  constructor(
    private readonly inner: SessionStore,
    private readonly metrics: Metrics,
    private readonly tracer?: Tracer,
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    return this.time("get_many", tenantId, () => this.inner.getMany(tenantId, refs));
  }

  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.time("store", tenantId, () => this.inner.store(tenantId, ref, write, limits));
  }

  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.time("merge", tenantId, () => this.inner.merge(tenantId, ref, write, limits));
  }

  history(tenantId: string, ref: SessionRef, first: number, before?: number): Promise<SessionHistoryPage> {
    return this.time("history", tenantId, () => this.inner.history(tenantId, ref, first, before));
  }

  restore(tenantId: string, ref: SessionRef, restore: SessionRestore, limits: WriteLimits): Promise<SessionRecord> {
    return this.time("restore", tenantId, () => this.inner.restore(tenantId, ref, restore, limits));
  }

  deleteSession(tenantId: string, ref: SessionRef): Promise<boolean> {
    return this.time("delete_session", tenantId, () => this.inner.deleteSession(tenantId, ref));
  }

  deleteUserSessions(tenantId: string, userId: string): Promise<number> {
    return this.time("delete_user_sessions", tenantId, () => this.inner.deleteUserSessions(tenantId, userId));
  }

  listUserSessions(tenantId: string, userId: string, first: number, after?: PageCursor): Promise<SessionIndexPage> {
    return this.time("list_user_sessions", tenantId, () => this.inner.listUserSessions(tenantId, userId, first, after));
  }

  purgeOrphans(tenantId: string, olderThanSeconds: number): Promise<number> {
    return this.time("purge_orphans", tenantId, () => this.inner.purgeOrphans(tenantId, olderThanSeconds));
  }

  ping(): Promise<void> {
    return this.time("ping", undefined, () => this.inner.ping());
  }

  /** The shared store outlives the request: closing a request's view closes nothing. */
  async close(): Promise<void> {}

  private async time<T>(command: string, tenantId: string | undefined, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const span = this.tracer?.startSpan(
      `session_store.${command}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "db.system.name": this.inner.kind,
          "db.operation.name": command,
          ...(tenantId === undefined ? {} : { "session_context.tenant_id": tenantId }),
        },
      },
      otelContext.active(),
    );
    try {
      return await work();
    } catch (error) {
      span?.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message ?? String(error) });
      throw error;
    } finally {
      const ms = performance.now() - started;
      this.storeMs += ms;
      this.metrics.storeCommand(command).observe(ms / 1000);
      span?.end();
    }
  }
}
