import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Redis, Result } from "ioredis";
import { ConflictError, ContextTooLargeError } from "../../errors/errors";
import type { SessionRecord, SessionRef, SessionWrite, WriteLimits } from "../../sessions/session-record";
import type { SessionStore } from "../../sessions/session-store";
import { sessionKey } from "../keys";
import { CONTEXT_JSON_OVERHEAD, decodeDocument, newest, toRecord } from "../session-document";
import { toStoreError } from "./redis-errors";

type WriteReply = [status: "OK" | "CONFLICT" | "TOO_LARGE", value: string];

declare module "ioredis" {
  interface RedisCommander<Context> {
    /** See scripts/write-session-1.lua for KEYS, ARGV and the reply. */
    writeSession(key: string, ...args: string[]): Result<WriteReply, Context>;
  }
}

const WRITE_SESSION_LUA = readFileSync(join(__dirname, "scripts", "write-session-1.lua"), "utf8");

/**
 * Session contexts in one Redis: a JSON document per session under `keys.sessionKey`, the TTL on the key.
 * Reads are one MGET; each write is one EVALSHA of write-session-1.lua, so a merge is atomic without any retry.
 * The client is injected: this class never opens or configures a connection of its own.
 */
export class RedisSessionStore implements SessionStore {
  readonly kind = "redis";

  constructor(private readonly redis: Redis) {
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis needs nothing from us.
    redis.defineCommand("writeSession", { numberOfKeys: 1, lua: WRITE_SESSION_LUA });
  }

  async getMany(tenantId: string, refs: readonly SessionRef[]): Promise<(SessionRecord | null)[]> {
    if (refs.length === 0) return [];
    const values = await this.redis
      .mget(refs.map((ref) => sessionKey(tenantId, ref.userId, ref.sessionId)))
      .catch(toStoreError("read"));
    return values.map((value, i) => (value === null ? null : toRecord(tenantId, refs[i], decodeDocument(value))));
  }

  store(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("store", tenantId, ref, write, limits);
  }

  merge(tenantId: string, ref: SessionRef, write: SessionWrite, limits: WriteLimits): Promise<SessionRecord> {
    return this.write("merge", tenantId, ref, write, limits);
  }

  async ping(): Promise<void> {
    await this.redis.ping().catch(toStoreError("read"));
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async write(
    mode: "store" | "merge",
    tenantId: string,
    ref: SessionRef,
    write: SessionWrite,
    limits: WriteLimits,
  ): Promise<SessionRecord> {
    // A store writes every field: the omitted ones are empty. A merge leaves omitted ones as they are ("").
    const fallback = mode === "store" ? { object: {}, list: [] } : undefined;
    const interrupted = write.interruptedQueries ?? fallback?.list;
    const recent = write.recentInteractions ?? fallback?.list;
    const newestInterrupted = interrupted && newest(interrupted, limits.maxInterruptedQueries);
    const newestRecent = recent && newest(recent, limits.maxRecentInteractions);
    const json = (value: unknown) => (value === undefined ? "" : JSON.stringify(value));

    const key = sessionKey(tenantId, ref.userId, ref.sessionId);
    const [status, value] = await this.redis
      .writeSession(
        key,
        mode,
        json(write.conversationState ?? fallback?.object),
        json(newestInterrupted),
        String(newestInterrupted?.length ?? 0),
        json(newestRecent),
        String(newestRecent?.length ?? 0),
        json(write.userPreferences ?? fallback?.object),
        String(write.ttlSeconds ?? 0),
        String(limits.defaultTtlSeconds),
        String(write.expectedVersion ?? -1),
        String(limits.maxContextBytes - CONTEXT_JSON_OVERHEAD),
        String(limits.maxInterruptedQueries),
        String(limits.maxRecentInteractions),
      )
      .catch(toStoreError("write"));

    switch (status) {
      case "OK":
        return toRecord(tenantId, ref, decodeDocument(value));
      case "CONFLICT":
        throw new ConflictError(write.expectedVersion ?? -1, Number(value));
      case "TOO_LARGE":
        throw new ContextTooLargeError(Number(value) + CONTEXT_JSON_OVERHEAD, limits.maxContextBytes);
      default:
        throw new Error(`write-session script answered ${String(status)}`);
    }
  }
}
