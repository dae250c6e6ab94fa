#!/usr/bin/env node
// Mints an HS256 development token for AUTH_MODE=jwt, signed with JWT_SECRET from the environment.
//
//   JWT_SECRET=… npm run token -- --tenant t1 --user u1 [--roles service,admin] [--expires 1h]
//
// Prints only the token, so it composes: TOKEN=$(npm run -s token -- --tenant t1 --user u1).
// JWT_ISSUER and JWT_AUDIENCE, when set, become the iss and aud claims (the server checks them when configured).
// For development only: production tokens come from your identity provider.
import { parseArgs } from "node:util";
import { SignJWT } from "jose";

const usage =
  "usage: JWT_SECRET=<secret> npm run token -- --tenant <tenant id> --user <user id> [--roles a,b] [--expires 1h]";

function fail(message) {
  process.stderr.write(`mint-dev-token: ${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      tenant: { type: "string" },
      user: { type: "string" },
      roles: { type: "string" },
      expires: { type: "string", default: "1h" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  }));
} catch (error) {
  fail(error.message);
}

if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const secret = process.env.JWT_SECRET;
if (!secret) fail("JWT_SECRET is not set: export the same JWT_SECRET the server runs with");
if (!values.tenant) fail("--tenant is required (becomes the tenant_id claim)");
if (!values.user) fail("--user is required (becomes the sub claim)");

const roles = (values.roles ?? "")
  .split(",")
  .map((role) => role.trim())
  .filter((role) => role.length > 0);

const jwt = new SignJWT({ tenant_id: values.tenant, roles })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(values.user)
  .setIssuedAt();
if (process.env.JWT_ISSUER) jwt.setIssuer(process.env.JWT_ISSUER);
if (process.env.JWT_AUDIENCE) jwt.setAudience(process.env.JWT_AUDIENCE);
try {
  jwt.setExpirationTime(values.expires);
} catch {
  fail(`--expires ${JSON.stringify(values.expires)} is not a time span such as 30m, 1h or 7d`);
}

process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
