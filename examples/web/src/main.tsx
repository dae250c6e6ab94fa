import { ApolloProvider } from "@apollo/client/react";
import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { currentIdentity, signIn, signOut, type Identity } from "./identity";
import { createLiveClient, type LiveClient } from "./live-client";
import { SessionLog } from "./session-log";
import { SessionPage } from "./session-page";
import "./style.css";

// Where the service is: same origin by default (the dev server proxies /graphql to it, WebSocket included);
// `VITE_GRAPHQL_URL=https://sessions.example.com/graphql` at build time for a page served elsewhere.
const endpoint: string = import.meta.env.VITE_GRAPHQL_URL || "/graphql";

const params = new URLSearchParams(location.search);
const sessionId = params.get("session") || "demo";
const device = params.get("device") || windowName();

// One client and one log per token, made outside React: StrictMode renders twice in development, and the log
// counts page loads.
const opened = new Map<string, { live: LiveClient; log: SessionLog }>();
function open(identity: Identity) {
  let one = opened.get(identity.token);
  if (!one) {
    const key = `scs-web:${identity.tenantId}:${identity.userId}:${sessionId}`;
    one = { live: createLiveClient(endpoint, identity), log: new SessionLog(sessionStorage, key) };
    opened.set(identity.token, one);
  }
  return one;
}

function Root() {
  const [identity, setIdentity] = useState<Identity | null>(() => currentIdentity());
  if (!identity) return <SignIn onSignedIn={() => setIdentity(currentIdentity())} />;
  const { live, log } = open(identity);
  return (
    <ApolloProvider client={live.apollo}>
      <SessionPage
        live={live}
        identity={identity}
        sessionId={sessionId}
        device={device}
        log={log}
        onSignOut={() => {
          live.dispose();
          opened.delete(identity.token);
          signOut();
          setIdentity(null);
        }}
      />
    </ApolloProvider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [refused, setRefused] = useState(false);
  return (
    <form
      className="sign-in"
      onSubmit={(event) => {
        event.preventDefault();
        if (signIn(token)) onSignedIn();
        else setRefused(true);
      }}
    >
      <h1>Session Context Service: live updates</h1>
      <p>
        Paste a JWT for the server's <code>JWT_SECRET</code>, for instance from{" "}
        <code>npm run -s token -- --tenant t1 --user u1</code>:
      </p>
      <textarea aria-label="Token" rows={4} value={token} onChange={(event) => setToken(event.target.value)} />
      {refused && <p className="error">That is not a JWT with tenant_id and sub.</p>}
      <button type="submit">Open session {sessionId}</button>
    </form>
  );
}

/** A short name for this tab, kept across its reloads. */
function windowName(): string {
  const kept = sessionStorage.getItem("scs-web:device");
  if (kept) return kept;
  const name = `window-${Math.random().toString(36).slice(2, 6)}`;
  sessionStorage.setItem("scs-web:device", name);
  return name;
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
