import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Certificates for TLS tests, made by `openssl` in a temporary directory. */
export interface TestCertificates {
  /** PEM of the CA that signed the server certificate (what REDIS_TLS_CA_FILE names). */
  readonly caFile: string;
  readonly ca: string;
  /** A server certificate for 127.0.0.1 and localhost (subjectAltName), and its key: redis-server's. */
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM of a CA that signed nothing here: a client trusting only it refuses the server ("unknown CA"). */
  readonly otherCaFile: string;
  /** Removes the directory. */
  remove(): void;
}

/** Makes a CA, a server certificate it signs, and an unrelated CA (P-256 keys: quick to make), valid for a day. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "scs-tls-"));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  try {
    openssl("req", "-x509", ...newKey, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=scs test CA");
    openssl("req", "-new", ...newKey, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
    writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    openssl(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      "1",
      "-days",
      "1",
      "-extfile",
      "server.ext",
      "-out",
      "server.crt",
    );
    openssl("req", "-x509", ...newKey, "-keyout", "other.key", "-out", "other.crt", "-days", "1", "-subj", "/CN=other");
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    caFile: file("ca.crt"),
    ca: readFileSync(file("ca.crt"), "utf8"),
    certFile: file("server.crt"),
    keyFile: file("server.key"),
    otherCaFile: file("other.crt"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * redis-server arguments that make it serve TLS only on `port` (plain port off) with the test server certificate;
 * clients need no certificate of their own. Replication and the Cluster bus use TLS too (each node presents the same
 * certificate and trusts the same CA).
 */
export function tlsServerArgs(certificates: TestCertificates, port: number): string[] {
  return [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--tls-cert-file",
    certificates.certFile,
    "--tls-key-file",
    certificates.keyFile,
    "--tls-ca-cert-file",
    certificates.caFile,
    "--tls-auth-clients",
    "no",
    "--tls-replication",
    "yes",
  ];
}
