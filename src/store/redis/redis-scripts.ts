import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Result } from "ioredis";
import type { RedisClient } from "./redis-client";

/** The status write-session-7.lua answers first; what the second element holds depends on it. */
export enum WriteSessionStatus {
  /** Written: the second element is the new document, in parts to be joined. */
  Written = "OK",
  /** `expectedVersion` differed: the second element is the stored version. Nothing written. */
  Conflict = "CONFLICT",
  /** The context would exceed the limit: the second element is its fields' byte count. Nothing written. */
  TooLarge = "TOO_LARGE",
  /** A merge would leave an object field over MAX_OBJECT_KEYS keys: the second element names it, the third counts. */
  TooManyKeys = "TOO_MANY_KEYS",
}

/**
 * The third element of a write's reply: whether the tenant still has to be put on the cleanup schedule (its
 * settings hash has no `scheduled` flag). The schedule is a cross-tenant key, so the script cannot add it itself.
 */
export enum FirstCleanup {
  AlreadyScheduled = "0",
  Needed = "1",
}

/** What claim-cleanup-1.lua answers. */
export enum CleanupClaim {
  /** Another replica moved the due time first: the run is not ours. */
  TakenElsewhere = 0,
  Claimed = 1,
}

/** What release-lease-1.lua answers. */
export enum LeaseRelease {
  /** The lease had expired or belongs to another holder: left alone. */
  NotHeld = 0,
  Released = 1,
}

/** What import-session-7.lua answers first. Only `Written` wrote anything. */
export enum ImportStatus {
  Written = "WRITTEN",
  /** The same version with the same context is there already. */
  Unchanged = "UNCHANGED",
  /** Mode "skip", and another state of the session is there. */
  Exists = "EXISTS",
  /** Mode "newer", and the session there was written as late or later. */
  NotNewer = "NOT_NEWER",
  /** Its expiry has passed. */
  Expired = "EXPIRED",
}

/** import-session-7.lua's reply: the status, then (when written) FirstCleanup and the tenant's cleanup interval. */
export type ImportSessionReply = [status: ImportStatus, firstCleanup: FirstCleanup, cleanupIntervalSeconds: string];

/** export-sessions.lua's reply: the node's clock (ms), then per session [pttl, document, entry…] or [] when gone. */
export type ExportSessionsReply = [
  now: string,
  ...sessions: ([pttl: number, document: string, ...entries: string[]] | [])[],
];

/** write-session-7.lua's reply; the last two elements come only with `Written` (with `TooManyKeys` the third is the count). */
export type WriteSessionReply = [
  status: WriteSessionStatus,
  value: string | string[],
  firstCleanup?: FirstCleanup,
  cleanupIntervalSeconds?: string,
];

/** WriteSessionReply as bytes (ioredis's `…Buffer` form of a command): the document is not decoded on its way in. */
export type WriteSessionBufferReply = [
  status: Buffer,
  value: Buffer | Buffer[],
  firstCleanup?: Buffer,
  cleanupIntervalSeconds?: Buffer,
];

declare module "ioredis" {
  interface RedisCommander<Context> {
    /** See scripts/write-session-7.lua for KEYS, ARGV and the reply. */
    writeSession(...keysAndArgs: string[]): Result<WriteSessionReply, Context>;
    /** writeSession, its reply as bytes. */
    writeSessionBuffer(...keysAndArgs: string[]): Result<WriteSessionBufferReply, Context>;
    /** See scripts/delete-sessions.lua: numKeys first, then KEYS, then ARGV. */
    deleteSessions(numKeys: number, ...keysAndArgs: string[]): Result<[deleted: number, dropped: number], Context>;
    /** See scripts/session-history-2.lua. */
    sessionHistory(sessionKey: string, historyKey: string, before: string, first: string): Result<string[], Context>;
    /** See scripts/user-sessions-page-4.lua. */
    userSessionsPage(...keysAndArgs: string[]): Result<(string | number)[], Context>;
    /** See scripts/import-session-7.lua for KEYS, ARGV and the reply. */
    importSession(...keysAndArgs: string[]): Result<ImportSessionReply, Context>;
    /** See scripts/export-sessions.lua: numKeys first, then KEYS. */
    exportSessions(numKeys: number, ...keys: string[]): Result<ExportSessionsReply, Context>;
    /** See scripts/claim-cleanup-1.lua. */
    claimCleanup(key: string, tenantId: string, dueAt: string, nextAt: string): Result<CleanupClaim, Context>;
    /** See scripts/release-lease-1.lua. */
    releaseLease(key: string, token: string): Result<LeaseRelease, Context>;
    /** See scripts/server-time-1.lua. */
    serverTime(key: string): Result<[seconds: string, micros: string], Context>;
  }
}

/**
 * A script file `scripts/<name>-<numKeys>.lua`: the number in its name is how many of its arguments are keys. A
 * file without one (delete-sessions.lua) takes a varying number of keys, which the caller passes first on each call.
 */
function load(file: string): { lua: string; numberOfKeys?: number } {
  const numberOfKeys = /-(\d+)\.lua$/.exec(file)?.[1];
  return {
    lua: readFileSync(join(__dirname, "scripts", file), "utf8"),
    ...(numberOfKeys === undefined ? {} : { numberOfKeys: Number(numberOfKeys) }),
  };
}

/** Every script of the Redis stores, read once, under the command name the stores call it by. */
const SCRIPTS = {
  writeSession: load("write-session-7.lua"),
  sessionHistory: load("session-history-2.lua"),
  deleteSessions: load("delete-sessions.lua"),
  userSessionsPage: load("user-sessions-page-4.lua"),
  importSession: load("import-session-7.lua"),
  exportSessions: load("export-sessions.lua"),
  claimCleanup: load("claim-cleanup-1.lua"),
  releaseLease: load("release-lease-1.lua"),
  serverTime: load("server-time-1.lua"),
};

const defined = new WeakSet<RedisClient>();

/**
 * Registers every script on `redis`; each Redis store calls this in its constructor, and only the first call per
 * client does anything. defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT, so a restarted Redis needs
 * nothing from us; it talks to no server itself.
 */
export function defineScripts(redis: RedisClient): void {
  if (defined.has(redis)) return;
  for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
  defined.add(redis);
}
