import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { createClient as createSseClient } from "graphql-sse";
import WebSocket from "ws";
import { STORE } from "./api";
import { freshTenant, gatewayHeaders, type TestServer } from "./test-server";

/** A result a subscription delivered (a `next`), as the client saw it. */
export interface LiveResult<T = Record<string, unknown>> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/**
 * What one subscription delivered, in order, and how it ended. `next(n)` waits (event-driven, no polling) until n
 * results have arrived in all and returns them; `ended` settles when the server completed or failed it.
 */
export class Received<T = Record<string, unknown>> {
  readonly results: LiveResult<T>[] = [];
  completed = false;
  error: unknown = undefined;
  private waiters: (() => void)[] = [];

  push(result: LiveResult<T>): void {
    this.results.push(result);
    this.wake();
  }

  end(error?: unknown): void {
    this.completed = true;
    this.error = error;
    this.wake();
  }

  /** Resolves with the first n results once they are there; rejects after timeoutMs or if it ends before. */
  async next(n: number, timeoutMs = 10_000): Promise<LiveResult<T>[]> {
    await this.until(() => this.results.length >= n || this.completed, `${n} results`, timeoutMs);
    if (this.results.length < n) {
      throw new Error(`the subscription ended after ${this.results.length} of ${n} results: ${describe(this.error)}`);
    }
    return this.results.slice(0, n);
  }

  /** Resolves once the server ended the subscription. */
  async ended(timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.completed, "the end of the subscription", timeoutMs);
  }

  private until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.results)}`));
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

function describe(error: unknown): string {
  if (error === undefined) return "completed";
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "code" in error) {
    const close = error as { code: number; reason?: string };
    return `closed ${close.code} ${close.reason ?? ""}`;
  }
  return JSON.stringify(error);
}

/** A graphql-ws client of the server at `httpUrl` (its `/graphql`) over `ws`, without retries (tests see every close). */
export function wsClient(
  httpUrl: string,
  options: { headers?: Record<string, string>; connectionParams?: Record<string, unknown> } = {},
): WsClient {
  const url = `${httpUrl.replace(/^http/, "ws")}/graphql`;
  const { headers } = options;
  return createWsClient({
    url,
    connectionParams: options.connectionParams,
    webSocketImpl: class extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers });
      }
    },
    retryAttempts: 0,
    lazy: true,
  });
}

/** Subscribes on a graphql-ws client; the Received collects what arrives. `stop` unsubscribes. */
export function subscribeWs<T = Record<string, unknown>>(
  client: WsClient,
  query: string,
  variables: Record<string, unknown> = {},
): Received<T> & { stop: () => void } {
  const received = new Received<T>();
  const stop = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => received.push(result as LiveResult<T>),
      error: (error) => received.end(error ?? new Error("error")),
      complete: () => received.end(),
    },
  );
  return Object.assign(received, { stop });
}

/** Subscribes over SSE (graphql-sse, distinct connections) on `/graphql/stream` with these headers. */
export function subscribeSse<T = Record<string, unknown>>(
  httpUrl: string,
  headers: Record<string, string>,
  query: string,
  variables: Record<string, unknown> = {},
): Received<T> & { stop: () => void; dispose: () => void } {
  const client = createSseClient({ url: `${httpUrl}/graphql/stream`, headers, retryAttempts: 0 });
  const received = new Received<T>();
  const stop = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => received.push(result as LiveResult<T>),
      error: (error) => received.end(error ?? new Error("error")),
      complete: () => received.end(),
    },
  );
  return Object.assign(received, { stop, dispose: () => client.dispose() });
}

export const SESSION_CHANGED = `subscription Changed($sessionId: ID!, $userId: ID, $afterVersion: Int) {
  sessionContextChanged(sessionId: $sessionId, userId: $userId, afterVersion: $afterVersion) {
    type sessionId userId version operation change resync
    context { version conversationState interruptedQueries recentInteractions userPreferences }
  }
}`;

export const USER_SESSIONS_CHANGED = `subscription UserSessions($userId: ID) {
  userSessionsChanged(userId: $userId) { type sessionId version lastUpdated }
}`;

export interface SessionEvent {
  type: "UPDATED" | "DELETED";
  sessionId: string;
  userId: string;
  version: number;
  operation: string | null;
  change: Record<string, unknown> | null;
  resync: boolean;
  context: {
    version: number;
    conversationState: Record<string, unknown>;
    interruptedQueries: string[];
    recentInteractions: Record<string, unknown>[];
    userPreferences: Record<string, unknown>;
  } | null;
}

/** The sessionContextChanged events of a list of results (failing on a result with errors). */
export function sessionEvents(results: LiveResult<{ sessionContextChanged: SessionEvent }>[]): SessionEvent[] {
  return results.map((result) => {
    if (result.errors?.length) throw new Error(`a result had errors: ${JSON.stringify(result.errors)}`);
    return result.data!.sessionContextChanged;
  });
}

/** A raw graphql-transport-ws socket, for what the protocol client hides: close codes, pings, not reading. */
export class RawSocket {
  readonly socket: WebSocket;
  readonly messages: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  pings = 0;
  private waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string> = {}, options: { autoPong?: boolean } = {}) {
    this.socket = new WebSocket(`${url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws", {
      headers,
      autoPong: options.autoPong ?? true,
    });
    this.socket.on("message", (data) => {
      this.messages.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const waiter of [...this.waiters]) waiter();
    });
    this.socket.on("ping", () => {
      this.pings++;
      for (const waiter of [...this.waiters]) waiter();
    });
    this.closed = new Promise((resolve) =>
      this.socket.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
    );
  }

  async open(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) return;
    await new Promise((resolve, reject) => {
      this.socket.once("open", resolve);
      this.socket.once("error", reject);
    });
  }

  send(message: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /** connection_init, then waits for the ack. */
  async init(payload?: Record<string, unknown>): Promise<void> {
    await this.open();
    this.send({ type: "connection_init", ...(payload ? { payload } : {}) });
    await this.until(() => this.messages.some((m) => m.type === "connection_ack"), "connection_ack");
  }

  until(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
      this.socket.once("close", () => {
        clearTimeout(timer);
        if (done()) resolve();
        else reject(new Error(`the socket closed while waiting for ${what}`));
      });
    });
  }
}

/**
 * A fresh tenant's alice with session s1 holding a ~60 KB context: each of its events carries the whole context, so
 * a reader that stops has its socket's buffers full after a few dozen. Her headers.
 */
export async function aliceWithLargeSession(server: TestServer): Promise<Record<string, string>> {
  const headers = gatewayHeaders(freshTenant(), "alice");
  const big = { text: "x".repeat(60_000) };
  const stored = await server.post(
    { query: STORE, variables: { input: { sessionId: "s1", conversationState: big } } },
    headers,
  );
  expect(stored.body.errors).toBeUndefined();
  return headers;
}
