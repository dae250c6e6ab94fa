import { SignJWT } from "jose";

export const TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789";

export interface TokenClaims {
  tenant_id?: unknown;
  sub?: string;
  roles?: unknown;
  [claim: string]: unknown;
}

/** An HS256 token like a real identity provider would issue; `expiresIn` defaults to one hour. */
export async function mintToken(
  claims: TokenClaims,
  options: { secret?: string; expiresIn?: string | number; issuer?: string; audience?: string } = {},
): Promise<string> {
  const { sub, ...rest } = claims;
  let jwt = new SignJWT(rest)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "1h");
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}
