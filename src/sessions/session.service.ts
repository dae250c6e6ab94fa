import type { RequestContext } from "../context/request-context";
import { BadUserInputError } from "../errors/errors";
import { assertValidId } from "./ids";
import type { SessionContextInput } from "./session-context.input";
import { primeSession } from "./session-loader";
import type { SessionRecord, SessionWrite, WriteLimits } from "./session-record";
import type { SessionStore } from "./session-store";

/** Defaults that tenant settings will override per tenant. */
export const DEFAULT_TTL_SECONDS = 86_400;
export const DEFAULT_MAX_LIST_ENTRIES = 100;

export interface SessionServiceOptions {
  maxTtlSeconds: number;
  maxContextBytes: number;
}

/**
 * The use cases behind the resolvers: checks input and access, then reads through the request's loader or writes
 * through the store. Both the root fields and the federation reference resolver go through here, so they apply
 * the same tenant and role checks.
 */
export class SessionService {
  constructor(
    private readonly sessionStore: SessionStore,
    private readonly options: SessionServiceOptions,
  ) {}

  /** One session of the caller's tenant, or null when absent or expired. Batched with the request's other reads. */
  read(ctx: RequestContext, sessionId: unknown, userId: unknown, fieldPrefix = ""): Promise<SessionRecord | null> {
    assertValidId(sessionId, `${fieldPrefix}sessionId`);
    if (userId !== undefined && userId !== null) assertValidId(userId, `${fieldPrefix}userId`);
    const actingFor = ctx.caller.actingFor(userId as string | null | undefined, `${fieldPrefix}userId`);
    return ctx.sessions.load({ userId: actingFor, sessionId });
  }

  /** Replaces the whole context. */
  store(ctx: RequestContext, input: SessionContextInput): Promise<SessionRecord> {
    return this.write("store", ctx, input);
  }

  /** Shallow-merges objects and appends lists, atomically. */
  merge(ctx: RequestContext, input: SessionContextInput): Promise<SessionRecord> {
    return this.write("merge", ctx, input);
  }

  private async write(
    mode: "store" | "merge",
    ctx: RequestContext,
    input: SessionContextInput,
  ): Promise<SessionRecord> {
    assertValidId(input.sessionId, "input.sessionId");
    const userId = ctx.caller.actingFor(input.userId, "input.userId");
    const write = this.toWrite(input);
    const ref = { userId, sessionId: input.sessionId };
    const record = await this.sessionStore[mode](ctx.caller.tenantId, ref, write, this.limits());
    primeSession(ctx.sessions, record);
    return record;
  }

  private toWrite(input: SessionContextInput): SessionWrite {
    const { ttlSeconds, expectedVersion } = input;
    if (
      ttlSeconds !== undefined &&
      ttlSeconds !== null &&
      (ttlSeconds < 1 || ttlSeconds > this.options.maxTtlSeconds)
    ) {
      throw new BadUserInputError(
        "input.ttlSeconds",
        `must be between 1 and ${this.options.maxTtlSeconds} (MAX_TTL_SECONDS)`,
      );
    }
    if (expectedVersion !== undefined && expectedVersion !== null && expectedVersion < 0) {
      throw new BadUserInputError("input.expectedVersion", "must be 0 or more");
    }
    // An explicit null means "not given", like an omitted field.
    return {
      conversationState: input.conversationState ?? undefined,
      interruptedQueries: input.interruptedQueries ?? undefined,
      recentInteractions: input.recentInteractions ?? undefined,
      userPreferences: input.userPreferences ?? undefined,
      ttlSeconds: ttlSeconds ?? undefined,
      expectedVersion: expectedVersion ?? undefined,
    };
  }

  private limits(): WriteLimits {
    return {
      defaultTtlSeconds: DEFAULT_TTL_SECONDS,
      maxContextBytes: this.options.maxContextBytes,
      maxInterruptedQueries: DEFAULT_MAX_LIST_ENTRIES,
      maxRecentInteractions: DEFAULT_MAX_LIST_ENTRIES,
    };
  }
}
