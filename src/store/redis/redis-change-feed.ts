import { Cluster } from "ioredis";
import type { Logger } from "pino";
import { decodeChangeMessage } from "../../live/session-change";
import { LocalChangeFanout, type SessionChangeFeed, type SessionChangeListener } from "../../live/session-change-feed";
import { changeChannel } from "../keys";
import { whenReady, type RedisClient } from "./redis-client";
import { toStoreError } from "./redis-errors";
import { ServiceUnavailableError } from "../../errors/errors";

/** How long a subscription waits for the feed's connection (the first one opens it) before it fails. */
const READY_TIMEOUT_MS = 2000;

interface Channel {
  readonly tenantId: string;
  /** Settles when SSUBSCRIBE has answered (rejected: it failed, and the channel is gone again). */
  subscribed: Promise<unknown>;
}

/**
 * Session changes from Redis: one connection of its own in subscriber mode (opened on the first subscription),
 * `SSUBSCRIBE` to each user's change channel that has a listener in this process, decoded once per message and handed
 * to every local listener of that user. The write and delete scripts `SPUBLISH` in the same atomic step as the
 * change, so the messages of one session arrive in version order.
 *
 * Pub/sub does not replay: messages published while this connection was down are lost. So every reconnect is
 * followed by subscribing again (ioredis's own resubscription is off: it would not say when it is done) and then by
 * `missed()` to every listener, which reads where its sessions stand. On a Cluster the connection is a Cluster
 * client with sharded subscribers (one connection per master that owns a subscribed channel's slot); when one of
 * those drops, ioredis subscribes again on the master that owns the slot now, and the listeners are told to check
 * once that has had time to happen.
 */
export class RedisChangeFeed implements SessionChangeFeed {
  private connection: RedisClient | undefined;
  private readonly fanout = new LocalChangeFanout();
  private readonly channels = new Map<string, Channel>();
  private closed = false;
  private connecting: Promise<boolean> | undefined;

  constructor(
    private readonly client: RedisClient,
    private readonly logger: Logger,
  ) {}

  async listen(tenantId: string, userId: string, listener: SessionChangeListener): Promise<() => void> {
    const name = changeChannel(tenantId, userId);
    const connection = this.subscriber();
    // The connection is opened on the first subscription, and has no offline queue: wait for it, boundedly.
    if (connection.status !== "ready") {
      // One wait shared by every subscription that arrives meanwhile (not one listener each).
      this.connecting ??= whenReady(connection, READY_TIMEOUT_MS).finally(() => (this.connecting = undefined));
      if (!(await this.connecting)) {
        throw new ServiceUnavailableError("the session store's change feed is not connected; retry");
      }
    }
    if (this.fanout.add(name, listener)) {
      const channel: Channel = { tenantId, subscribed: connection.ssubscribe(name) };
      this.channels.set(name, channel);
      channel.subscribed.catch(() => {
        if (this.channels.get(name) === channel) this.channels.delete(name);
      });
    }
    const stop = () => {
      if (this.fanout.remove(name, listener)) {
        this.channels.delete(name);
        connection.sunsubscribe(name).catch(() => undefined); // a dropped connection has forgotten it anyway
      }
    };
    try {
      await this.channels.get(name)?.subscribed;
    } catch (error) {
      stop();
      return toStoreError("read")(error);
    }
    return stop;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fanout.clear();
    this.channels.clear();
    const connection = this.connection;
    this.connection = undefined;
    if (connection) await connection.quit().catch(() => connection.disconnect());
  }

  private subscriber(): RedisClient {
    if (this.connection) return this.connection;
    const logger = this.logger.child({ connection: "changes" });
    const connection =
      this.client instanceof Cluster
        ? this.client.duplicate([], { shardedSubscribers: true, lazyConnect: false })
        : this.client.duplicate({ autoResubscribe: false, enableOfflineQueue: false });
    // The bytes, not ioredis's string: an announcement carries a whole document, which stays bytes (decodeChangeMessage).
    connection.on("smessageBuffer", (name: Buffer, message: Buffer) => {
      const channelName = name.toString("utf8");
      const channel = this.channels.get(channelName);
      if (channel === undefined) return;
      const change = decodeChangeMessage(channel.tenantId, message);
      if (change !== undefined) this.fanout.publish(channelName, change);
    });
    connection.on("error", (error: Error) => logger.debug({ err: error.message }, "change feed connection error"));
    if (connection instanceof Cluster) {
      // A master's subscriber connection ended: ioredis refreshes the slot map and subscribes again where the slots
      // are now. There is no event for "done", so check after the refresh has had time to finish, and again later.
      // A failover takes a few seconds (node timeout, election, slot map refresh): keep checking for a while.
      connection.on("-node", () => this.afterResubscribing([1000, 3000, 8000, 15000]));
    } else {
      let dropped = false;
      connection.on("close", () => (dropped = true));
      connection.on("ready", () => {
        if (!dropped || this.closed) return;
        dropped = false;
        void this.resubscribe(connection);
      });
    }
    this.connection = connection;
    return connection;
  }

  /** After a reconnect of one Redis: subscribe to every channel again, then have the listeners check. */
  private async resubscribe(connection: RedisClient): Promise<void> {
    const names = this.fanout.channels();
    await Promise.all(
      names.map(async (name) => {
        try {
          await connection.ssubscribe(name);
        } catch {
          // Left for the next reconnect; the listeners still check now.
        }
      }),
    );
    this.logger.info({ event: "changes.resubscribed", channels: names.length }, "change feed subscribed again");
    this.fanout.missed();
  }

  private afterResubscribing(delaysMs: number[]): void {
    for (const delay of delaysMs) setTimeout(() => this.closed || this.fanout.missed(), delay).unref();
  }
}
