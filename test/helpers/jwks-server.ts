import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";

/** A key pair whose public half a JWKS server publishes under `kid`. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: "RS256" | "ES256";
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function generateSigningKey(alg: "RS256" | "ES256", kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk };
}

/** A token signed with `key`, carrying its `kid`, valid for an hour. */
export async function signWith(
  key: SigningKey,
  claims: { tenant_id?: unknown; sub?: string; roles?: unknown },
): Promise<string> {
  const { sub, ...rest } = claims;
  let jwt = new SignJWT(rest).setProtectedHeader({ alg: key.alg, kid: key.kid }).setIssuedAt().setExpirationTime("1h");
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(key.privateKey);
}

export interface JwksServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A tiny JWKS endpoint on 127.0.0.1 publishing the public halves of `keys`. */
export async function startJwksServer(keys: readonly SigningKey[]): Promise<JwksServer> {
  const body = JSON.stringify({ keys: keys.map((key) => key.publicJwk) });
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
