import { GraphQLError } from "graphql";
import type { RequestContext } from "../context/request-context";
import { ErrorCode } from "../errors/error-code";
import { ServiceUnavailableError } from "../errors/errors";
import type { Metrics } from "../metrics/metrics";
import { assertValidId } from "../sessions/ids";
import { ChangeQueue } from "./change-queue";
import { closing } from "./closing-iterator";
import type { SessionChangeFeed } from "./session-change-feed";
import { openSessionChangeStream, type StreamItem } from "./session-change-stream";

/** Subscriptions one connection may have open at once (the contract's bound). */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 100;

/** One WebSocket or SSE connection, as its subscriptions see it. */
export interface LiveConnection {
  /** The server's live updates, which open this connection's subscriptions. */
  readonly updates: LiveUpdates;
  /** Subscriptions open on it now. */
  open: number;
  /** Ends the connection because its client does not read what it is sent. */
  closeSlowConsumer(): void;
}

/** One event of `userSessionsChanged`, before GraphQL resolves its fields. */
export interface UserSessionEventValue {
  readonly type: "UPDATED" | "DELETED";
  readonly sessionId: string;
  readonly version: number;
  readonly lastUpdated: Date;
}

export type LiveField = "sessionContextChanged" | "userSessionsChanged";

export interface LiveUpdatesOptions {
  feed: SessionChangeFeed;
  metrics: Metrics;
  /** Subscriptions this process serves at once (MAX_SUBSCRIPTIONS). */
  maxSubscriptions: number;
  /** Live changes held for one subscription whose client has not taken them; more is a slow consumer. */
  maxQueued?: number;
}

/** Thrown when a connection already has MAX_SUBSCRIPTIONS_PER_CONNECTION subscriptions open. */
export class SubscriptionLimitError extends GraphQLError {
  constructor() {
    super(`at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection; open another connection`, {
      extensions: { code: ErrorCode.SUBSCRIPTION_LIMIT },
    });
  }
}

/**
 * The process's live updates: opens the event streams of the two subscription fields with the caller's rights
 * and within the bounds (per connection and per process), and counts them for the metrics. The transports
 * (graphql-ws, graphql-sse) put a LiveConnection in each operation's context; the resolvers call these.
 */
export class LiveUpdates {
  private open = 0;
  private readonly maxQueued: number;

  private readonly counted: Record<LiveField, { events: { inc(): void }; delay: { observe(value: number): void } }>;

  constructor(private readonly options: LiveUpdatesOptions) {
    this.maxQueued = options.maxQueued ?? 256;
    const { eventsDelivered, eventDelivery } = options.metrics;
    const countedFor = (field: LiveField) => ({
      events: eventsDelivered.labels({ field }),
      delay: eventDelivery.labels({ field }),
    });
    this.counted = {
      sessionContextChanged: countedFor("sessionContextChanged"),
      userSessionsChanged: countedFor("userSessionsChanged"),
    };
  }

  /** Subscriptions open on this process now. */
  get openSubscriptions(): number {
    return this.open;
  }

  async sessionContextChanged(
    ctx: RequestContext,
    args: { sessionId: unknown; userId?: unknown; afterVersion?: unknown },
  ): Promise<AsyncIterableIterator<StreamItem>> {
    const connection = this.connectionOf(ctx);
    const caller = ctx.caller;
    assertValidId(args.sessionId, "sessionId");
    const userId = caller.actingFor(args.userId as string | null | undefined);
    const afterVersion = args.afterVersion ?? undefined;
    if (afterVersion !== undefined && (!Number.isSafeInteger(afterVersion) || (afterVersion as number) < 0)) {
      throw new GraphQLError("afterVersion: must be 0 or more", {
        extensions: { code: ErrorCode.BAD_USER_INPUT, field: "afterVersion" },
      });
    }
    const release = this.admit(connection, "sessionContextChanged");
    try {
      const stream = await openSessionChangeStream({
        store: ctx.store,
        feed: this.options.feed,
        tenantId: caller.tenantId,
        ref: { userId, sessionId: args.sessionId },
        afterVersion: afterVersion as number | undefined,
        maxQueued: this.maxQueued,
        onSlowConsumer: () => this.slowConsumer(connection),
        onClose: release,
      });
      return stream;
    } catch (error) {
      release();
      throw error;
    }
  }

  async userSessionsChanged(
    ctx: RequestContext,
    args: { userId?: unknown },
  ): Promise<AsyncIterableIterator<UserSessionEventValue>> {
    const connection = this.connectionOf(ctx);
    const caller = ctx.caller;
    const userId = caller.actingFor(args.userId as string | null | undefined);
    const release = this.admit(connection, "userSessionsChanged");
    const queue = new ChangeQueue(this.maxQueued, () => this.slowConsumer(connection));
    let stop: () => void;
    try {
      stop = await this.options.feed.listen(caller.tenantId, userId, {
        change: (change) => queue.push(change),
        // The list is a notification feed, not a replayable log: a client that reconnects re-reads the list.
        missed: () => undefined,
      });
    } catch (error) {
      release();
      throw error;
    }
    async function* events(): AsyncGenerator<UserSessionEventValue> {
      for (;;) {
        const item = await queue.next();
        if (item.kind === "closed") return;
        if (item.kind === "overflow") return; // the connection is being closed
        if (item.kind !== "change") continue;
        const { change } = item;
        yield {
          type: change.type,
          sessionId: change.ref.sessionId,
          version: change.version,
          lastUpdated: new Date(change.at),
        };
      }
    }
    return closing(events(), () => {
      queue.close();
      stop();
      release();
    });
  }

  /**
   * Counts an event sent to one subscriber; `committedAt` (ms, the store's clock) for events that stand for one
   * write. Runs for every subscriber and event: the metrics' label children are looked up once.
   */
  delivered(field: LiveField, committedAt: number | undefined): void {
    const counted = this.counted[field];
    counted.events.inc();
    if (committedAt !== undefined) counted.delay.observe(Math.max(0, Date.now() - committedAt) / 1000);
  }

  private connectionOf(ctx: RequestContext): LiveConnection {
    // The resolver found this connection in the context before calling here.
    return ctx.live as LiveConnection;
  }

  private slowConsumer(connection: LiveConnection): void {
    this.options.metrics.slowConsumers.inc();
    connection.closeSlowConsumer();
  }

  /**
   * Takes a place for one more subscription on the connection and the process, or throws; the function it returns
   * gives the place back (once). Places are taken before anything is awaited, so subscribe messages that arrive
   * together cannot all pass the check.
   */
  private admit(connection: LiveConnection, field: LiveField): () => void {
    if (connection.open >= MAX_SUBSCRIPTIONS_PER_CONNECTION) throw new SubscriptionLimitError();
    if (this.open >= this.options.maxSubscriptions) {
      throw new ServiceUnavailableError(
        "this server has as many subscriptions open as it may (MAX_SUBSCRIPTIONS); retry, another replica may have room",
        false,
        true,
      );
    }
    this.open++;
    connection.open++;
    const gauge = this.options.metrics.subscriptionsActive;
    gauge.inc({ field });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      connection.open--;
      gauge.dec({ field });
    };
  }
}
