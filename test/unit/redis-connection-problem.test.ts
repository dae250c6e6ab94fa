import { ReplyError } from "ioredis";
import { connectionProblem } from "../../src/store/redis/redis-connection-problem";
import { toStoreError } from "../../src/store/redis/redis-errors";

/** An error as Node reports a failed socket or TLS handshake: a message and a code. */
function nodeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

const plain = { tls: false, handshaking: true };
const tls = { tls: true, handshaking: true };

describe("A failed connection attempt is explained by its cause", () => {
  it.each([
    [
      "WRONGPASS",
      new ReplyError("WRONGPASS invalid username-password pair or user is disabled."),
      plain,
      "credentials",
    ],
    ["NOAUTH", new ReplyError("NOAUTH Authentication required."), tls, "credentials"],
    [
      "SELF_SIGNED_CERT_IN_CHAIN",
      nodeError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN"),
      tls,
      "certificate",
    ],
    ["CERT_HAS_EXPIRED", nodeError("certificate has expired", "CERT_HAS_EXPIRED"), tls, "certificate"],
    [
      "ERR_TLS_CERT_ALTNAME_INVALID",
      nodeError("Hostname/IP does not match certificate's altnames", "ERR_TLS_CERT_ALTNAME_INVALID"),
      tls,
      "certificate",
    ],
    ["ECONNRESET", nodeError("read ECONNRESET", "ECONNRESET"), plain, "not-tls"],
    ["ETIMEDOUT", nodeError("connect ETIMEDOUT", "ETIMEDOUT"), tls, "tls-handshake"],
    ["ECONNREFUSED", nodeError("connect ECONNREFUSED 127.0.0.1:6379", "ECONNREFUSED"), plain, "unreachable"],
  ])("%s", (code, error, attempt, kind) => {
    expect(connectionProblem(error, attempt)).toMatchObject({ kind, code });
  });

  it("takes a Cluster's cause from the last node's error", () => {
    const error = Object.assign(new Error("Failed to refresh slots cache."), {
      lastNodeError: new ReplyError("WRONGPASS invalid username-password pair or user is disabled."),
    });

    expect(connectionProblem(error, tls)).toMatchObject({ kind: "credentials", code: "WRONGPASS" });
  });

  it("tells the Sentinels' credentials from the data nodes'", () => {
    const error = new Error(
      "All sentinels are unreachable. Retrying from scratch after 100ms. Last error: WRONGPASS invalid username-password pair or user is disabled.",
    );

    expect(connectionProblem(error, tls)).toMatchObject({ kind: "sentinel-credentials", code: "WRONGPASS" });
  });

  it("says nothing of a reset connection that was ready (a crash), nor of ioredis refusing commands meanwhile", () => {
    expect(
      connectionProblem(nodeError("read ECONNRESET", "ECONNRESET"), { tls: false, handshaking: false }),
    ).toMatchObject({ kind: "unreachable" });
    expect(
      connectionProblem(new Error("Stream isn't writeable and enableOfflineQueue options is false"), plain),
    ).toBeUndefined();
    expect(connectionProblem(new Error("Connection is closed."), plain)).toBeUndefined();
  });
});

describe("Refused credentials in a reply are SERVICE_UNAVAILABLE, naming only the reason", () => {
  it.each(["WRONGPASS invalid username-password pair or user is disabled.", "NOAUTH Authentication required."])(
    "%s",
    (reply) => {
      const error = Object.assign(new ReplyError(reply), { command: { name: "auth", args: ["scs", "hunter2"] } });

      expect(() => toStoreError("read")(error)).toThrow(
        expect.objectContaining({
          message: `the session store refused the read (${reply.split(" ")[0]}); nothing was written`,
          extensions: expect.objectContaining({ code: "SERVICE_UNAVAILABLE" }),
        }),
      );
    },
  );
});
