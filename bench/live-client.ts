/**
 * The bench's live-update clients, kept cheap because they share core 1 with Redis: subscribers are raw `ws`
 * sockets speaking graphql-transport-ws (connection_init, subscribe, next) that read only the event's version out of
 * each frame, and merges go out at a fixed rate over a keep-alive `node:http` agent, whatever the answers take (an
 * open loop: a slow server does not slow the writes down).
 */
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { WebSocket } from "ws";
import { GATEWAY_SECRET } from "./scenarios";
import type { SeededSession } from "./seed";
import { SESSION_FIELDS } from "./workload";

/** `version` first, so a subscriber finds it at a fixed place; then what a client showing the session would ask. */
export const FOLLOW = `subscription Follow($sessionId: ID!) { sessionContextChanged(sessionId: $sessionId) {
  version type sessionId userId operation change resync context { ${SESSION_FIELDS} } } }`.replace(/\s+/g, " ");

const VERSION_AT = Buffer.from('{"sessionContextChanged":{"version":');

/** One connection with one subscription to one session's changes. */
export class Subscriber {
  /** Events received, by version: the receipt time (performance.now()). */
  readonly receipts = new Map<number, number>();
  /** Events received more than once, frames that were not an event, and how the socket ended if it did early. */
  repeats = 0;
  unexpected: string[] = [];
  closed: string | undefined;
  /** The highest version received. */
  lastVersion = 0;

  private constructor(
    readonly session: SeededSession,
    private readonly socket: WebSocket,
  ) {}

  /**
   * Opens a socket to `/graphql` with the gateway headers of the session's user, waits for connection_ack and sends
   * the subscription; resolves once it is sent (graphql-ws does not acknowledge a subscribe: see `whenListening`).
   */
  static open(port: number, session: SeededSession, query = FOLLOW): Promise<Subscriber> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, "graphql-transport-ws", {
      headers: { "x-gateway-secret": GATEWAY_SECRET, "x-tenant-id": session.tenantId, "x-user-id": session.userId },
      perMessageDeflate: false,
    });
    const subscriber = new Subscriber(session, socket);
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      socket.once("error", fail);
      socket.once("open", () => socket.send(JSON.stringify({ type: "connection_init" })));
      socket.once("close", (code, reason) => {
        subscriber.closed = `${code} ${String(reason)}`;
        reject(new Error(`socket closed before connection_ack: ${subscriber.closed}`));
      });
      socket.once("message", (data: Buffer) => {
        if (!data.toString().includes('"connection_ack"')) return reject(new Error(`no ack: ${data.toString()}`));
        socket.off("error", fail);
        socket.on("error", () => undefined); // a close follows, recorded below
        socket.on("message", (frame: Buffer) => subscriber.onFrame(frame));
        socket.send(
          JSON.stringify({
            id: "1",
            type: "subscribe",
            payload: { query, variables: { sessionId: session.sessionId } },
          }),
        );
        resolve(subscriber);
      });
    });
  }

  /** Resolves once an event of `version` or later has arrived, or after `timeoutMs` with false. */
  async hasSeen(version: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.lastVersion >= version) return true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.lastVersion >= version;
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.close(1000);
    });
  }

  private onFrame(frame: Buffer): void {
    const at = performance.now();
    const start = frame.indexOf(VERSION_AT);
    if (start < 0) {
      const text = frame.toString();
      if (text.includes('"type":"ping"')) this.socket.send('{"type":"pong"}');
      else if (this.unexpected.length < 5) this.unexpected.push(text.slice(0, 300));
      return;
    }
    let version = 0;
    for (let i = start + VERSION_AT.length; frame[i] >= 0x30 && frame[i] <= 0x39; i++)
      version = version * 10 + frame[i] - 0x30;
    if (this.receipts.has(version)) this.repeats++;
    else this.receipts.set(version, at);
    if (version > this.lastVersion) this.lastVersion = version;
  }
}

/** Opens one subscriber per session in `sessions`, `inFlight` handshakes at a time. */
export async function openSubscribers(
  port: number,
  sessions: readonly SeededSession[],
  inFlight = 50,
): Promise<Subscriber[]> {
  const subscribers: Subscriber[] = new Array(sessions.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < sessions.length; i = next++) subscribers[i] = await Subscriber.open(port, sessions[i]);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return subscribers;
}

/** One merge as the bench sent it: when it went out, when its answer came, and the version the answer gave. */
export interface SentMerge {
  session: number;
  sentAt: number;
  answeredAt: number;
  version: number;
}

/** Merges the sender lets wait for their answers; beyond this it skips sends (the server fell behind). */
export const MAX_IN_FLIGHT = 256;

/**
 * Merges into `sessions` (round-robin) at `perSecond` for `seconds`, sending on schedule whether or not earlier
 * merges were answered, but with at most MAX_IN_FLIGHT unanswered: a server that cannot keep up shows as fewer
 * merges per second (`skipped`), not as a run that lasts until a growing queue drains. Resolves with every answered
 * merge; `failures` lists the others (an answer without a version, a transport error).
 */
export async function sendMerges(
  port: number,
  sessions: readonly SeededSession[],
  body: (session: SeededSession, n: number) => string,
  perSecond: number,
  seconds: number,
): Promise<{ merges: SentMerge[]; failures: string[]; skipped: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const merges: SentMerge[] = [];
  const failures: string[] = [];
  const pending = new Set<Promise<void>>();
  const send = (n: number) => {
    const index = n % sessions.length;
    const session = sessions[index];
    const payload = body(session, n);
    const sentAt = performance.now();
    const done = new Promise<void>((resolve) => {
      const req = request(
        {
          agent,
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/graphql",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload),
            "x-gateway-secret": GATEWAY_SECRET,
            "x-tenant-id": session.tenantId,
            "x-user-id": session.userId,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const answeredAt = performance.now();
            const text = Buffer.concat(chunks).toString();
            const version = Number(/"version":(\d+)/.exec(text)?.[1]);
            if (res.statusCode === 200 && Number.isSafeInteger(version) && !text.includes('"errors"'))
              merges.push({ session: index, sentAt, answeredAt, version });
            else failures.push(`${res.statusCode} ${text.slice(0, 200)}`);
            resolve();
          });
        },
      );
      req.on("error", (error) => {
        failures.push(error.message);
        resolve();
      });
      req.end(payload);
    });
    pending.add(done);
    void done.then(() => pending.delete(done));
  };
  const started = performance.now();
  const total = Math.round(perSecond * seconds);
  let sent = 0;
  let skipped = 0;
  while (sent + skipped < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond) + 1);
    while (sent + skipped < due) {
      if (pending.size < MAX_IN_FLIGHT) send(sent++);
      else skipped++;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await Promise.all(pending);
  agent.destroy();
  return { merges, failures, skipped };
}

/**
 * One user's connection with one subscription (FOLLOW) to each of the user's `sessions`, as a client showing all
 * of them would hold: the gateway headers name one user per connection, and a connection carries at most 100
 * subscriptions (the server's MAX_SUBSCRIPTIONS_PER_CONNECTION). It counts the events of each subscription and
 * reads nothing else of them.
 */
export class UserWatcher {
  /** Events received, by subscription (the index of its session in `sessions`). */
  readonly events: number[];
  unexpected: string[] = [];
  closed: string | undefined;

  private constructor(
    readonly sessions: readonly SeededSession[],
    private readonly socket: WebSocket,
  ) {
    this.events = sessions.map(() => 0);
  }

  /** Opens the socket, waits for connection_ack and subscribes once per session; resolves once all are sent. */
  static open(port: number, sessions: readonly SeededSession[]): Promise<UserWatcher> {
    const user = sessions[0];
    const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, "graphql-transport-ws", {
      headers: { "x-gateway-secret": GATEWAY_SECRET, "x-tenant-id": user.tenantId, "x-user-id": user.userId },
      perMessageDeflate: false,
    });
    const watcher = new UserWatcher(sessions, socket);
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      socket.once("error", fail);
      socket.once("open", () => socket.send(JSON.stringify({ type: "connection_init" })));
      socket.once("close", (code, reason) => {
        watcher.closed = `${code} ${String(reason)}`;
        reject(new Error(`socket closed before connection_ack: ${watcher.closed}`));
      });
      socket.once("message", (data: Buffer) => {
        if (!data.toString().includes('"connection_ack"')) return reject(new Error(`no ack: ${data.toString()}`));
        socket.off("error", fail);
        socket.on("error", () => undefined); // a close follows, recorded by the close handler
        socket.on("message", (frame: Buffer) => watcher.onFrame(frame));
        for (const [i, session] of sessions.entries()) {
          const payload = { query: FOLLOW, variables: { sessionId: session.sessionId } };
          socket.send(JSON.stringify({ id: String(i), type: "subscribe", payload }));
        }
        resolve(watcher);
      });
    });
  }

  /** Events received on all of this connection's subscriptions. */
  get total(): number {
    return this.events.reduce((a, n) => a + n, 0);
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.close(1000);
    });
  }

  // graphql-ws writes `{"id":"<id>","type":"next",…}`: the id is read from there without parsing the payload; a
  // frame laid out otherwise is parsed.
  private onFrame(frame: Buffer): void {
    if (frame.subarray(0, NEXT_ID.length).equals(NEXT_ID)) {
      let i = NEXT_ID.length;
      let id = 0;
      for (; frame[i] >= 0x30 && frame[i] <= 0x39; i++) id = id * 10 + frame[i] - 0x30;
      if (frame.subarray(i, i + NEXT_TYPE.length).equals(NEXT_TYPE) && id < this.events.length) {
        this.events[id]++;
        return;
      }
    }
    const text = frame.toString();
    let message: { id?: unknown; type?: unknown; payload?: { errors?: unknown } } = {};
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      // not JSON: recorded below
    }
    const id = Number(message.id);
    if (message.type === "next" && !message.payload?.errors && id >= 0 && id < this.events.length) this.events[id]++;
    else if (message.type === "ping") this.socket.send('{"type":"pong"}');
    else if (this.unexpected.length < 5) this.unexpected.push(text.slice(0, 300));
  }
}

const NEXT_ID = Buffer.from('{"id":"');
const NEXT_TYPE = Buffer.from('","type":"next","payload":{"data":{"sessionContextChanged":{');
