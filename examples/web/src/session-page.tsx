import { useApolloClient, useMutation, useQuery, useSubscription } from "@apollo/client/react";
import { CombinedGraphQLErrors, ServerError, type ErrorLike, type InMemoryCache } from "@apollo/client";
import { useState, useSyncExternalStore, type FormEvent } from "react";
import type { Identity } from "./identity";
import { writeDeleted, writeIfNewer, type ConnectionState, type LiveClient } from "./live-client";
import { FOLLOW, MERGE, SESSION, type Session, type SessionEvent } from "./operations";
import type { LogEntry, SessionLog } from "./session-log";

interface SessionPageProps {
  readonly live: LiveClient;
  readonly identity: Identity;
  readonly sessionId: string;
  /** This window's name, written with each message so the other window shows who wrote it. */
  readonly device: string;
  readonly log: SessionLog;
  readonly onSignOut: () => void;
}

/**
 * One session, live: the context as it is now (Apollo's cache, kept current by the subscription), a box to write to
 * it, and the changes this tab received. The subscription starts once the first read has answered, so that events
 * always land after that answer in the cache (an answer that came later could put an older state over them).
 */
export function SessionPage({ live, identity, sessionId, device, log, onSignOut }: SessionPageProps) {
  const { data, error, refetch } = useQuery(SESSION, { variables: { sessionId } });
  const connection = useSyncExternalStore(live.connection.subscribe, live.connection.get);
  const [generation, setGeneration] = useState(0);
  const [ended, setEnded] = useState<string | null>(null);

  const restartLater = (why: string) => {
    setEnded(why);
    // A subscription the server ended (SERVICE_UNAVAILABLE while Redis was away, say) resumes from the log.
    setTimeout(() => {
      setEnded(null);
      setGeneration((n) => n + 1);
    }, 2_000);
  };

  return (
    <div className="page">
      <header>
        <h1>
          Session <code data-testid="session-id">{sessionId}</code>
        </h1>
        <span className="who">
          {identity.userId} · tenant {identity.tenantId} · window <b data-testid="device">{device}</b>
        </span>
        <Badge state={connection} />
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {error && refusedCredentials(error) && (
        <p className="error" data-testid="refused">
          The server refused this token (expired, or signed with another key): sign out and paste a new one.
        </p>
      )}
      {error && !refusedCredentials(error) && (
        <p className="error">
          Could not read the session: {error.message}{" "}
          <button type="button" onClick={() => void refetch().catch(() => undefined)}>
            Try again
          </button>
        </p>
      )}
      {ended && <p className="error">Subscription ended ({ended}); resuming…</p>}
      {data !== undefined && connection.kind !== "signed-out" && (
        <Follow
          key={generation}
          sessionId={sessionId}
          log={log}
          onEnded={(why) => live.connection.get().kind !== "signed-out" && restartLater(why)}
        />
      )}
      <main>
        <SessionView session={data?.sessionContext ?? null} />
        <Composer sessionId={sessionId} device={device} />
        <Changes log={log} />
      </main>
    </div>
  );
}

/** The subscription: resumes after the tab's last version and hands each new event to the log and the cache. */
function Follow(props: { sessionId: string; log: SessionLog; onEnded: (why: string) => void }) {
  const { sessionId, log, onEnded } = props;
  const cache = useApolloClient().cache as InMemoryCache;
  // Fixed for this subscription's life: graphql-ws resubscribes with it after a lost socket, and the log drops
  // what the tab already has. A remount (after the server ended the subscription) starts from the log again.
  const [afterVersion] = useState(() => log.afterVersion);
  useSubscription(FOLLOW, {
    variables: { sessionId, afterVersion },
    fetchPolicy: "no-cache",
    ignoreResults: true,
    onData: ({ data }) => {
      const event: SessionEvent | undefined = data.data?.sessionContextChanged;
      if (!event || !log.accept(event)) return;
      if (event.type === "DELETED") writeDeleted(cache, event.sessionId, event.userId);
      else if (event.context) writeIfNewer(cache, event.context);
    },
    onError: (error) => onEnded(error.message),
    onComplete: () => onEnded("completed by the server"),
  });
  return null;
}

/** A 401 (UNAUTHENTICATED): the token is not accepted, and asking again will not change that. */
function refusedCredentials(error: ErrorLike): boolean {
  if (ServerError.is(error)) return error.statusCode === 401;
  return CombinedGraphQLErrors.is(error) && error.errors.some((e) => e.extensions?.code === "UNAUTHENTICATED");
}

function Badge({ state }: { state: ConnectionState }) {
  const text =
    state.kind === "live"
      ? "live"
      : state.kind === "connecting"
        ? "connecting…"
        : state.kind === "reconnecting"
          ? `reconnecting (closed ${state.code}${state.reason ? `: ${state.reason}` : ""})`
          : `signed out: ${state.reason || "token refused"}`;
  return (
    <span className={`badge ${state.kind}`} data-testid="connection" data-state={state.kind}>
      {text}
    </span>
  );
}

function SessionView({ session }: { session: Session | null }) {
  if (!session) {
    return (
      <section className="session">
        <h2>Nothing here yet</h2>
        <p>Write something below: this session is created by the first write.</p>
      </section>
    );
  }
  return (
    <section className="session">
      <h2>
        Version <span data-testid="version">{session.version}</span>
      </h2>
      <p className="meta">last written {new Date(session.lastUpdated).toLocaleTimeString()}</p>
      <ol className="messages" data-testid="messages">
        {session.recentInteractions.map((message, i) => (
          <li key={i}>
            <b>{String(message.from ?? "?")}</b> <span>{String(message.text ?? JSON.stringify(message))}</span>
          </li>
        ))}
      </ol>
      <details>
        <summary>conversationState and userPreferences</summary>
        <pre>
          {JSON.stringify(
            { conversationState: session.conversationState, userPreferences: session.userPreferences },
            null,
            2,
          )}
        </pre>
      </details>
    </section>
  );
}

function Composer({ sessionId, device }: { sessionId: string; device: string }) {
  const cache = useApolloClient().cache as InMemoryCache;
  const [text, setText] = useState("");
  const [failure, setFailure] = useState<string | null>(null);
  // Not cached by Apollo: its answer goes through writeIfNewer like the events (see live-client.ts).
  const [merge, { loading }] = useMutation(MERGE, { fetchPolicy: "no-cache" });

  const send = async (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim()) return;
    setFailure(null);
    try {
      const { data } = await merge({
        variables: {
          input: {
            sessionId,
            recentInteractions: [{ from: device, text: text.trim(), at: new Date().toISOString() }],
            conversationState: { lastMessageFrom: device },
          },
        },
      });
      if (data) writeIfNewer(cache, data.mergeSessionContext);
      setText("");
    } catch (error) {
      setFailure((error as Error).message);
    }
  };

  return (
    <form className="composer" onSubmit={send}>
      <input
        aria-label="Message"
        placeholder="Write to the session…"
        value={text}
        onChange={(event) => setText(event.target.value)}
      />
      <button type="submit" disabled={loading}>
        Send
      </button>
      {failure && <p className="error">{failure}</p>}
    </form>
  );
}

function Changes({ log }: { log: SessionLog }) {
  const { entries } = useSyncExternalStore(log.subscribe, log.snapshot);
  const check = log.check();
  const range =
    check.from === null ? "none yet" : check.from === check.to ? `v${check.from}` : `v${check.from}–v${check.to}`;
  const verdict =
    check.missing.length > 0 ? `missing ${check.missing.map((v) => `v${v}`).join(", ")}` : "none missing, none twice";
  return (
    <section className="changes">
      <h2>Changes received</h2>
      <p className="check" data-testid="check" data-ok={check.missing.length === 0}>
        {range}: {verdict}
        {check.repeats > 0 && ` (${check.repeats} repeats after a reconnect dropped)`}
      </p>
      <ol data-testid="changes">
        {entries.map((entry, i) => (
          <Change key={i} entry={entry} firstOfLoad={i > 0 && entries[i - 1].load !== entry.load} />
        ))}
      </ol>
    </section>
  );
}

function Change({ entry, firstOfLoad }: { entry: LogEntry; firstOfLoad: boolean }) {
  const what =
    entry.type === "DELETED"
      ? "deleted"
      : entry.resync
        ? "resync: the current state (the kept history did not reach back)"
        : entry.note !== undefined
          ? `${entry.operation ?? "?"} “${entry.note}”`
          : `${entry.operation ?? "?"} ${entry.changed.join(", ")}`;
  return (
    <li
      className={firstOfLoad ? "first-of-load" : undefined}
      data-version={entry.version}
      data-type={entry.type}
      data-resync={entry.resync}
      data-load={entry.load}
    >
      {firstOfLoad && <span className="reload">after reload {entry.load - 1}</span>}
      <b>v{entry.version}</b> {what}
    </li>
  );
}
