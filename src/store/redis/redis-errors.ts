import { ReplyError } from "ioredis";
import { ServiceUnavailableError } from "../../errors/errors";

// Replies that mean "Redis cannot serve this now", as opposed to a bug in what we sent. Refused credentials belong
// here too: the client authenticates before it is ready and commands wait for ready, so they show up as a refused
// connection, but should a reply ever carry WRONGPASS or NOAUTH it is the same outage (and its message is never
// passed on: it names only the reason).
const UNAVAILABLE_REPLY = /^(OOM|LOADING|READONLY|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|WRONGPASS|NOAUTH)\b/;

// The client refused before sending, or a Cluster gave up following redirections (MOVED, ASK, TRYAGAIN,
// CLUSTERDOWN, a node not connected): each of those replies means the command did not run.
const NOT_SENT =
  /Stream isn't writeable|enableOfflineQueue|Connection is closed|ECONNREFUSED|Cluster isn't ready|Too many Cluster redirections\. Last error: (ReplyError: )?(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;

/**
 * Maps a Redis client failure to SERVICE_UNAVAILABLE. For writes, a command that was sent but got no answer
 * (timeout, connection lost) may still be applied, so the error says its outcome is unknown. Anything else
 * (a script bug, a wrong type) is rethrown as is and masked as an internal error by the server.
 */
export function toStoreError(kind: "read" | "write") {
  return (error: unknown): never => {
    if (error instanceof ReplyError) {
      const reply = (error as Error).message;
      if (!UNAVAILABLE_REPLY.test(reply)) throw error;
      const reason = reply.split(/\s/)[0];
      throw new ServiceUnavailableError(`the session store refused the ${kind} (${reason}); nothing was written`);
    }
    const message = error instanceof Error ? error.message : String(error);
    if (kind === "write" && !NOT_SENT.test(message)) {
      throw new ServiceUnavailableError(
        "the session store did not answer in time; the write may or may not have been applied — read before retrying",
        true,
      );
    }
    throw new ServiceUnavailableError(`the session store is unavailable (${kind} not done)`);
  };
}
