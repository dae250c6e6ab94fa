import type { GraphQLError } from "graphql";
import type { SessionOperationName, SessionVersion } from "../history/history-entry";
import type { JsonObject, SessionRecord, SessionRef } from "../sessions/session-record";
import type { SessionStore } from "../sessions/session-store";
import { ErrorCode } from "../errors/error-code";
import { toRecord } from "../store/session-document";
import { ChangeQueue } from "./change-queue";
import type { SessionChange } from "./session-change";
import type { SessionChangeFeed } from "./session-change-feed";
import type { JsonText } from "../execution/json-text";
import { closing } from "./closing-iterator";

/** One event of `sessionContextChanged`, before GraphQL resolves its fields. */
export interface SessionContextEventValue {
  readonly type: "UPDATED" | "DELETED";
  readonly userId: string;
  readonly sessionId: string;
  readonly version: number;
  readonly operation: SessionOperationName | null;
  /** From Redis, the change's JSON text as announced (JsonText, written into answers as it is). */
  readonly change: JsonObject | JsonText | null;
  readonly context: SessionRecord | null;
  readonly resync: boolean;
  /** When the change was committed (epoch ms; undefined for a resync, which stands for no one write). */
  readonly committedAt: number | undefined;
}

/**
 * What the stream yields: an event, or the error that ends it (sent as the subscription's last result). A live change
 * handed out as it came (in order, no catch-up) is one SharedItem for every follower of the session in this process;
 * replayed and resync events are the subscriber's own.
 */
export type StreamItem = { readonly event: SessionContextEventValue } | SharedItem | { readonly error: GraphQLError };

/**
 * One live change as every follower of its session gets it: the same object for all of them (one per change the
 * feed decoded, and the feed's channels are per tenant and user), so what a subscription document makes of it can
 * be made once and kept here for the other subscribers with the same document (live-subscribe.ts). It lives as long
 * as some subscriber's queue still holds it.
 */
export interface SharedItem {
  readonly event: SessionContextEventValue;
  /** Answers made of this event by sharing key: serialized bytes, null when it could not be shared (errors). */
  readonly answers: Map<string, SharedAnswer>;
}

export type SharedAnswer = Buffer | null | Promise<Buffer | null>;

export function isSharedItem(item: StreamItem): item is SharedItem {
  return "answers" in item;
}

/** The change's SharedItem; made by the first follower that hands it out. */
const sharedItems = new WeakMap<SessionChange, SharedItem>();

function sharedItemOf(change: SessionChange): SharedItem {
  let item = sharedItems.get(change);
  if (item === undefined) {
    const event = change.type === "DELETED" ? deleted(change.ref, change.version, false, change.at) : updated(change);
    item = { event, answers: new Map() };
    sharedItems.set(change, item);
  }
  return item;
}

export interface SessionChangeStreamOptions {
  readonly store: SessionStore;
  readonly feed: SessionChangeFeed;
  readonly tenantId: string;
  readonly ref: SessionRef;
  /** Replay the kept changes after this version first; undefined: live changes only. */
  readonly afterVersion: number | undefined;
  /** Live changes held for a consumer that has not taken them; beyond this it is a slow consumer. */
  readonly maxQueued: number;
  /** Called once, when the consumer falls behind by more than maxQueued changes; the stream then ends. */
  readonly onSlowConsumer: () => void;
  /** Called once, when the stream ends (one wrapper fewer on every event than wrapping the stream again). */
  readonly onClose?: () => void;
}

/** Where the subscriber stands: the last version it was given, and which life of the session that was. */
interface Position {
  /** 0: the session is gone (or was never there), as far as the subscriber knows; undefined: nothing known yet. */
  version: number | undefined;
  storedAt: number | undefined;
}

/**
 * Every change of one session, in version order, with no gap and no repeat — the semantics of
 * `sessionContextChanged`. It listens to the feed first (holding live changes in a bounded queue), then replays
 * the kept history after `afterVersion`, then hands out live changes. Whenever the versions it holds do not follow
 * on from the last one given (a change published while the feed was reconnecting, a subscription that starts behind),
 * it reads the gap from the change log; when the log does not reach back that far, one UPDATED event with
 * `resync: true` and the current context stands for what cannot be replayed (one DELETED with `resync: true` when
 * the session is gone). Versions at or below the last one given are dropped: they are repeats.
 *
 * A session deleted and written again starts at version 1 in a new life (a new storedAt): the subscriber gets the
 * DELETED (or, when the session expired, which announces nothing, a DELETED with `resync: true`) and then the new
 * life's changes from 1.
 *
 * A store that cannot be read while catching up ends the stream with its error (SERVICE_UNAVAILABLE): the client
 * resubscribes with `afterVersion`. Resolves once it listens (so no change committed after that is missed);
 * returning from the iterator (the client unsubscribed), even before the first `next`, stops listening.
 */
export async function openSessionChangeStream(
  options: SessionChangeStreamOptions,
): Promise<AsyncIterableIterator<StreamItem>> {
  const { feed, tenantId, ref } = options;
  const queue = new ChangeQueue(options.maxQueued, options.onSlowConsumer);
  const stopListening = await feed.listen(tenantId, ref.userId, {
    change: (change) => {
      if (change.ref.sessionId === ref.sessionId) queue.push(change);
    },
    missed: () => queue.markMissed(),
  });
  return closing(changes(options, queue), () => {
    queue.close();
    stopListening();
    options.onClose?.();
  });
}

async function* changes(options: SessionChangeStreamOptions, queue: ChangeQueue): AsyncGenerator<StreamItem> {
  const { store, tenantId, ref } = options;
  const at: Position = { version: undefined, storedAt: undefined };
  try {
    if (options.afterVersion !== undefined) {
      at.version = options.afterVersion;
      yield* catchUp(store, tenantId, ref, at);
    }
    for (;;) {
      const item = await queue.next();
      if (item.kind === "closed") return;
      if (item.kind === "overflow") return; // onSlowConsumer has been called
      if (item.kind === "missed") {
        yield* afterDisruption(() => catchUpOrStart(store, tenantId, ref, at));
        continue;
      }
      for (const next of follow(item.change, at)) {
        if (next === CATCH_UP) yield* catchUp(store, tenantId, ref, at);
        else yield next;
      }
    }
  } catch (error) {
    if (isGraphQLError(error)) yield { error };
    else throw error;
  }
}

/** A catch-up after the feed lost its connection: where nothing was given yet, just where the session is now. */
async function* catchUpOrStart(
  store: SessionStore,
  tenantId: string,
  ref: SessionRef,
  at: Position,
): AsyncGenerator<StreamItem> {
  if (at.version !== undefined) {
    yield* catchUp(store, tenantId, ref, at);
    return;
  }
  const [record] = await store.getMany(tenantId, [ref]);
  at.version = record?.version ?? 0;
  at.storedAt = record?.storedAt.getTime();
}

/** How long a catch-up after a disruption keeps trying while the store is unavailable (a failover takes seconds). */
const DISRUPTION_RETRY_MS = 20_000;

/**
 * Runs a catch-up that follows a disruption of the feed (a Redis restart, a failover): the store may still be
 * unavailable for a few seconds, so SERVICE_UNAVAILABLE is retried once a second for up to DISRUPTION_RETRY_MS
 * before it ends the stream. A catch-up reads before it yields anything, so a retry never repeats an event.
 */
async function* afterDisruption(catchUpNow: () => AsyncGenerator<StreamItem>): AsyncGenerator<StreamItem> {
  const deadline = Date.now() + DISRUPTION_RETRY_MS;
  for (;;) {
    try {
      yield* catchUpNow();
      return;
    } catch (error) {
      const unavailable = isGraphQLError(error) && error.extensions.code === ErrorCode.SERVICE_UNAVAILABLE;
      if (!unavailable || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000)); // paces the retries of a store that is down
    }
  }
}

/** In what follow() returns: read the gap from the log here. */
const CATCH_UP = Symbol("catch-up");

const NOTHING: readonly never[] = [];

/**
 * What stands for one live change, in order: most often the one SharedItem every follower gets; nothing for a
 * repeat; CATCH_UP where there is a gap to read from the log. Synchronous and without a generator of its own: it
 * runs for every subscriber and every event.
 */
function follow(change: SessionChange, at: Position): readonly (StreamItem | typeof CATCH_UP)[] {
  if (change.type === "DELETED") {
    if (at.version === 0) return NOTHING; // already gone as far as the subscriber knows
    at.version = 0;
    at.storedAt = undefined;
    return [sharedItemOf(change)];
  }
  if (at.version !== undefined && at.version > 0 && at.storedAt !== undefined && change.storedAt !== at.storedAt) {
    // A new life of the session: the old one expired (which announces nothing) or its deletion was missed.
    const gone: StreamItem = { event: deleted(change.ref, at.version, true, undefined) };
    at.version = 0;
    if (change.version !== 1) return [gone, CATCH_UP];
    at.version = change.version;
    at.storedAt = change.storedAt;
    return [gone, sharedItemOf(change)];
  }
  if (at.version === undefined || change.version === at.version + 1) {
    at.version = change.version;
    at.storedAt = change.storedAt;
    return [sharedItemOf(change)];
  }
  if (change.version <= at.version) return NOTHING; // a repeat: the catch-up that filled a gap gave it already
  return [CATCH_UP];
}

/**
 * Brings the subscriber from `at` to where the session is now: the kept changes after `at.version` in order, or one
 * resync event when the log does not reach back to it (or the session is another life than the one it knew).
 */
async function* catchUp(
  store: SessionStore,
  tenantId: string,
  ref: SessionRef,
  at: Position,
): AsyncGenerator<StreamItem> {
  const from = at.version ?? 0;
  const [record] = await store.getMany(tenantId, [ref]);
  if (record === null) {
    if (from > 0) yield { event: deleted(ref, from, true, undefined) };
    at.version = 0;
    at.storedAt = undefined;
    return;
  }
  const storedAt = record.storedAt.getTime();
  const sameLife = at.storedAt === undefined || at.storedAt === storedAt;
  if (sameLife && record.version === from) {
    at.storedAt = storedAt;
    return;
  }
  let replay: readonly SessionVersion[] = [];
  if (sameLife && record.version > from) {
    const need = record.version - from;
    const page = await store.history(tenantId, ref, need, record.version + 1);
    // Newest first and contiguous: complete when it goes down to from + 1.
    if (page.versions.length === need && page.versions[need - 1].version === from + 1) replay = page.versions;
  }
  if (replay.length === 0) {
    yield { event: resync(record) };
  } else {
    for (let i = replay.length - 1; i >= 0; i--) yield { event: replayed(tenantId, ref, storedAt, replay[i]) };
  }
  at.version = record.version;
  at.storedAt = storedAt;
}

function updated(change: Extract<SessionChange, { type: "UPDATED" }>): SessionContextEventValue {
  return {
    type: "UPDATED",
    userId: change.ref.userId,
    sessionId: change.ref.sessionId,
    version: change.version,
    operation: change.operation,
    change: change.change,
    context: change.record,
    resync: false,
    committedAt: change.at,
  };
}

function replayed(tenantId: string, ref: SessionRef, storedAt: number, kept: SessionVersion): SessionContextEventValue {
  const { ttlSeconds, ...fields } = kept.context;
  const lastUpdated = kept.at.getTime();
  return {
    type: "UPDATED",
    userId: ref.userId,
    sessionId: ref.sessionId,
    version: kept.version,
    operation: kept.operation,
    change: kept.change,
    context: toRecord(tenantId, ref, { version: kept.version, storedAt, lastUpdated, ttlSeconds, ...fields }),
    resync: false,
    committedAt: lastUpdated,
  };
}

function resync(record: SessionRecord): SessionContextEventValue {
  return {
    type: "UPDATED",
    userId: record.userId,
    sessionId: record.sessionId,
    version: record.version,
    operation: null,
    change: null,
    context: record,
    resync: true,
    committedAt: undefined,
  };
}

function deleted(
  ref: SessionRef,
  version: number,
  isResync: boolean,
  at: number | undefined,
): SessionContextEventValue {
  return {
    type: "DELETED",
    userId: ref.userId,
    sessionId: ref.sessionId,
    version,
    operation: null,
    change: null,
    context: null,
    resync: isResync,
    committedAt: at,
  };
}

function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof Error && error.name === "GraphQLError";
}
