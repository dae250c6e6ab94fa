import type { RequestContext } from "../context/request-context";
import { BadUserInputError } from "../errors/errors";
import type { RestoreSessionArgs, SessionHistoryArgs } from "../history/session-history.args";
import type { SessionContextVersionConnection } from "../history/session-context-version.type";
import { VersionNotKeptError } from "../history/version-not-kept.error";
import { sessionKey } from "../store/keys";
import { assertValidId } from "./ids";
import { assertListEntries, assertObjectKeys, assertStorableJson } from "./json-limits";
import type { SessionContextInput } from "./session-context.input";
import { primeSession } from "./session-loader";
import type { Actor, SessionRecord, SessionWrite, WriteLimits } from "./session-record";
import type { PageCursor } from "./session-store";

/** Largest page of `userSessions`. */
export const MAX_PAGE_SIZE = 100;

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
  /** The bounds of every write; the TTL and list caps of a tenant that has set none are the store's defaults. */
  private readonly limits: WriteLimits;

  constructor(private readonly options: SessionServiceOptions) {
    this.limits = { maxContextBytes: options.maxContextBytes };
  }

  /** One session of the caller's tenant, or null when absent or expired. Batched with the request's other reads. */
  read(ctx: RequestContext, sessionId: unknown, userId: unknown, fieldPrefix = ""): Promise<SessionRecord | null> {
    assertValidId(sessionId, `${fieldPrefix}sessionId`);
    // actingFor validates a given userId (whatever its type) before comparing it with the caller.
    const actingFor = ctx.caller.actingFor(userId as string | null | undefined, `${fieldPrefix}userId`);
    return ctx.sessionLoader.load({ userId: actingFor, sessionId });
  }

  /**
   * Replaces the whole context. `returnContext` false: the answer reads only the written record's header (the
   * store need not send the context back).
   */
  store(ctx: RequestContext, input: SessionContextInput, returnContext = true): Promise<SessionRecord> {
    return this.write("store", ctx, input, returnContext);
  }

  /** Shallow-merges objects and appends lists, atomically. `returnContext` as for store. */
  merge(ctx: RequestContext, input: SessionContextInput, returnContext = true): Promise<SessionRecord> {
    return this.write("merge", ctx, input, returnContext);
  }

  private async write(
    mode: "store" | "merge",
    ctx: RequestContext,
    input: SessionContextInput,
    returnContext: boolean,
  ): Promise<SessionRecord> {
    assertValidId(input.sessionId, "input.sessionId");
    const userId = ctx.caller.actingFor(input.userId, "input.userId");
    const write = { ...this.toWrite(input), actor: actorOf(ctx), returnContext };
    const ref = { userId, sessionId: input.sessionId };
    const record = await ctx.store[mode](ctx.caller.tenantId, ref, write, this.limits);
    // Later reads of the request see the write; a record without its context would answer them wrongly.
    if (returnContext) primeSession(ctx.sessionLoader, record);
    else ctx.sessionLoader.clear(ref);
    return record;
  }

  /** A page of one user's sessions, newest last write first, in one store round trip; primes the request's loader. */
  async list(ctx: RequestContext, args: { userId?: string | null; first: number; after?: string | null }) {
    const userId = ctx.caller.actingFor(args.userId);
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > MAX_PAGE_SIZE) {
      throw new BadUserInputError("first", `must be between 1 and ${MAX_PAGE_SIZE}`);
    }
    const after = args.after === undefined || args.after === null ? undefined : decodeCursor(args.after);
    const page = await ctx.store.listUserSessions(ctx.caller.tenantId, userId, args.first, after);
    const edges = page.entries.flatMap(({ cursor, record }) => {
      // A session that expired between the index read and the session read is left out of the page.
      if (record === null) return [];
      primeSession(ctx.sessionLoader, record);
      return [{ cursor: encodeCursor(cursor), node: record }];
    });
    const last = page.entries.at(-1);
    return {
      edges,
      pageInfo: { hasNextPage: page.hasNextPage, endCursor: last ? encodeCursor(last.cursor) : null },
      totalCount: page.totalCount,
    };
  }

  /** A page of one session's kept versions, newest first, each with the whole context right after its write. */
  async history(ctx: RequestContext, args: SessionHistoryArgs): Promise<SessionContextVersionConnection> {
    assertValidId(args.sessionId, "sessionId");
    const ref = { userId: ctx.caller.actingFor(args.userId), sessionId: args.sessionId };
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > MAX_PAGE_SIZE) {
      throw new BadUserInputError("first", `must be between 1 and ${MAX_PAGE_SIZE}`);
    }
    const before = args.after === undefined || args.after === null ? undefined : decodeVersionCursor(args.after);
    const page = await ctx.store.history(ctx.caller.tenantId, ref, args.first, before);
    const key = sessionKey(ctx.caller.tenantId, ref.userId, ref.sessionId);
    const edges = page.versions.map((version) => ({
      cursor: encodeVersionCursor(version.version),
      node: { ...version, id: versionId(key, version.version), actorRoles: [...version.actorRoles] },
    }));
    return { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null } };
  }

  /** Back to a kept version, as a new write (version + 1, logged as RESTORE). */
  async restore(ctx: RequestContext, args: RestoreSessionArgs): Promise<SessionRecord> {
    assertValidId(args.sessionId, "sessionId");
    const ref = { userId: ctx.caller.actingFor(args.userId), sessionId: args.sessionId };
    if (!Number.isInteger(args.version) || args.version < 1) throw new VersionNotKeptError(args.version);
    const expectedVersion = args.expectedVersion ?? undefined;
    if (expectedVersion !== undefined && expectedVersion < 0) {
      throw new BadUserInputError("expectedVersion", "must be 0 or more");
    }
    const restore = { version: args.version, actor: actorOf(ctx), expectedVersion };
    const record = await ctx.store.restore(ctx.caller.tenantId, ref, restore, this.limits);
    primeSession(ctx.sessionLoader, record);
    return record;
  }

  /** Deletes one session; true when it existed. */
  async delete(ctx: RequestContext, sessionId: unknown, userId: string | null | undefined): Promise<boolean> {
    assertValidId(sessionId, "sessionId");
    const ref = { userId: ctx.caller.actingFor(userId), sessionId };
    const existed = await ctx.store.deleteSession(ctx.caller.tenantId, ref);
    ctx.sessionLoader.clear(ref);
    return existed;
  }

  /** Erasure: deletes every session of one user; returns how many there were. */
  async deleteUser(ctx: RequestContext, userId: string | null | undefined): Promise<number> {
    const target = ctx.caller.actingFor(userId);
    const deleted = await ctx.store.deleteUserSessions(ctx.caller.tenantId, target);
    ctx.sessionLoader.clearAll();
    return deleted;
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
    assertObjectKeys(input.conversationState, "input.conversationState");
    assertListEntries(input.interruptedQueries, "input.interruptedQueries");
    assertListEntries(input.recentInteractions, "input.recentInteractions");
    assertObjectKeys(input.userPreferences, "input.userPreferences");
    assertStorableJson(input.conversationState, "input.conversationState");
    input.recentInteractions?.forEach((item, i) => assertStorableJson(item, `input.recentInteractions.${i}`));
    assertStorableJson(input.userPreferences, "input.userPreferences");
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
}

/** The change log's writer: the caller, never the user a service acts for. */
function actorOf(ctx: RequestContext): Actor {
  return { userId: ctx.caller.userId, roles: ctx.caller.roles };
}

/** A version's id: opaque, unique per (tenant, user, session, version). */
function versionId(sessionKeyText: string, version: number): string {
  return Buffer.from(`${sessionKeyText}#${version}`).toString("base64url");
}

/** Opaque history cursor: base64url of ["v", version]; the next page starts below that version. */
function encodeVersionCursor(version: number): string {
  return Buffer.from(JSON.stringify(["v", version])).toString("base64url");
}

function decodeVersionCursor(text: string): number {
  try {
    const [tag, version] = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown[];
    if (tag === "v" && Number.isSafeInteger(version) && (version as number) > 0) return version as number;
  } catch {
    // falls through to the error below
  }
  throw new BadUserInputError("after", "is not a cursor this server issued");
}

/** Opaque page cursor: base64url of [lastUpdated, index member]. */
function encodeCursor(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.lastUpdated, cursor.member])).toString("base64url");
}

function decodeCursor(text: string): PageCursor {
  try {
    const [lastUpdated, member] = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown[];
    if (Number.isSafeInteger(lastUpdated) && typeof member === "string" && member.includes(":")) {
      return { lastUpdated: lastUpdated as number, member };
    }
  } catch {
    // falls through to the error below
  }
  throw new BadUserInputError("after", "is not a cursor this server issued");
}
