import { hash, timingSafeEqual } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { Config } from "../config";
import { UnauthenticatedError } from "../errors/errors";
import { idProblem } from "../sessions/ids";
import { Caller } from "./caller";

/** The request headers an authenticator reads (lower-case names, as Node gives them). */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** Turns a request's credentials into a Caller, or throws UnauthenticatedError. */
export interface Authenticator {
  authenticate(headers: RequestHeaders): Promise<Caller>;
}

function header(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

interface IdentitySource {
  tenant: string;
  user: string;
  roles: string;
}

function callerFrom(
  tenantId: unknown,
  userId: unknown,
  roles: unknown,
  source: IdentitySource,
  expiresAt?: number,
): Caller {
  const tenantProblem = idProblem(tenantId);
  if (tenantProblem) throw new UnauthenticatedError(`${source.tenant} ${tenantProblem}`);
  const userProblem = idProblem(userId);
  if (userProblem) throw new UnauthenticatedError(`${source.user} ${userProblem}`);
  if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === "string"))) {
    throw new UnauthenticatedError(`${source.roles} must be a list of strings`);
  }
  return new Caller(tenantId as string, userId as string, (roles as string[] | undefined) ?? [], expiresAt);
}

const JWT_CLAIMS: IdentitySource = {
  tenant: "token claim tenant_id",
  user: "token claim sub",
  roles: "token claim roles",
};
const GATEWAY_HEADERS: IdentitySource = {
  tenant: "header x-tenant-id",
  user: "header x-user-id",
  roles: "header x-roles",
};

/**
 * `Authorization: Bearer <JWT>` with claims `tenant_id`, `sub` and optional `roles`. HS256 with JWT_SECRET, or
 * RS256/ES256 keys from JWKS_URL (fetched and cached by jose). `exp`/`nbf` are always checked, issuer and
 * audience when configured.
 */
export class JwtAuthenticator implements Authenticator {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];

  constructor(private readonly options: Config["auth"]) {
    if (options.jwtSecret) {
      this.key = new TextEncoder().encode(options.jwtSecret);
      this.algorithms = ["HS256"];
    } else if (options.jwksUrl) {
      this.key = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 2000 });
      this.algorithms = ["RS256", "ES256"];
    } else {
      throw new Error("JwtAuthenticator needs JWT_SECRET or JWKS_URL");
    }
  }

  async authenticate(headers: RequestHeaders): Promise<Caller> {
    const authorization = header(headers, "authorization");
    const match = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match) throw new UnauthenticatedError("missing bearer token: send Authorization: Bearer <JWT>");
    let payload;
    try {
      // Two overloads of jwtVerify (static key / key function); the union needs the cast.
      ({ payload } = await jwtVerify(match[1], this.key as Uint8Array, {
        algorithms: this.algorithms,
        issuer: this.options.issuer,
        audience: this.options.audience,
      }));
    } catch (error) {
      throw new UnauthenticatedError(`invalid token: ${describeJoseError(error)}`);
    }
    const expiresAt = typeof payload.exp === "number" ? payload.exp * 1000 : undefined;
    return callerFrom(payload.tenant_id, payload.sub, payload.roles, JWT_CLAIMS, expiresAt);
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim ${error.claim} ${error.reason}`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "bad signature";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no matching key";
  if (error instanceof joseErrors.JWKSTimeout) return "key set did not answer in time";
  if (error instanceof joseErrors.JOSEError) return error.code;
  return "malformed";
}

/**
 * Identity set by a trusted router that already authenticated the user: `x-tenant-id`, `x-user-id`, `x-roles`
 * (comma-separated). With a gateway secret configured, `x-gateway-secret` must match it, so nobody who reaches
 * the subgraph directly can claim an identity.
 */
export class GatewayAuthenticator implements Authenticator {
  private readonly secretDigest: Buffer | undefined;

  constructor(gatewaySecret: string | undefined) {
    this.secretDigest = gatewaySecret === undefined ? undefined : digest(gatewaySecret);
  }

  async authenticate(headers: RequestHeaders): Promise<Caller> {
    if (this.secretDigest) {
      const given = header(headers, "x-gateway-secret");
      // Compare digests: equal length always, and constant time.
      if (given === undefined || !timingSafeEqual(digest(given), this.secretDigest)) {
        throw new UnauthenticatedError("missing or wrong x-gateway-secret");
      }
    }
    const roles = header(headers, "x-roles")
      ?.split(",")
      .map((r) => r.trim())
      .filter((r) => r.length > 0);
    return callerFrom(header(headers, "x-tenant-id"), header(headers, "x-user-id"), roles, GATEWAY_HEADERS);
  }
}

function digest(value: string): Buffer {
  return hash("sha256", value, "buffer");
}

export function createAuthenticator(auth: Config["auth"]): Authenticator {
  return auth.mode === "jwt" ? new JwtAuthenticator(auth) : new GatewayAuthenticator(auth.gatewaySecret);
}
