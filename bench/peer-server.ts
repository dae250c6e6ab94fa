/**
 * The GraphQL peer of `npm run bench`: the fastest Node GraphQL stack we know of — Mercurius on Fastify with
 * graphql-jit compiling every query from its second run (`jit: 1`) — serving `sessionContext` from the same Redis
 * as the server, so our CPU per read can be set beside a well-made generic one in the same run.
 *
 * It answers `sessionContext(sessionId, userId)` with the same fields and the same bytes as our server: JSONObject
 * for conversationState and userPreferences, [JSONObject] for recentInteractions, ISO DateTime strings, id =
 * base64url of the Redis key (src/store/keys.ts), expiresAt = lastUpdated + ttlSeconds. The resolver GETs the key
 * and JSON.parses the document, as a plain Redis-backed resolver would. Identity from the same gateway headers the
 * bench sends: the SHA-256 of x-gateway-secret compared in constant time (as our server does) to GATEWAY_SECRET's,
 * then x-tenant-id and x-user-id; reading another user's session is refused.
 *
 * REDIS_URL, GATEWAY_SECRET and PORT (0: any) from the environment; GET /health answers 200 once it listens.
 * Listens on 127.0.0.1 only; Fastify's logger is off (the server under test logs at warn, which is nothing here).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import Fastify from "fastify";
import { GraphQLError } from "graphql";
import { DateTimeResolver, JSONObjectResolver } from "graphql-scalars";
import { Redis } from "ioredis";
import mercurius, { type IResolvers } from "mercurius";
import { sessionKey } from "../src/store/keys";

declare module "mercurius" {
  interface MercuriusContext {
    /** From the gateway headers; undefined when they do not authenticate. */
    caller: Caller | undefined;
  }
}

const schema = `
  scalar DateTime
  scalar JSONObject

  type SessionContext {
    id: ID!
    tenantId: ID!
    userId: ID!
    sessionId: ID!
    conversationState: JSONObject!
    interruptedQueries: [String!]!
    recentInteractions: [JSONObject!]!
    userPreferences: JSONObject!
    storedAt: DateTime!
    lastUpdated: DateTime!
    expiresAt: DateTime!
    ttlSeconds: Int!
    version: Int!
  }

  type Query {
    sessionContext(sessionId: ID!, userId: ID): SessionContext
  }
`;

interface Caller {
  tenantId: string;
  userId: string;
}

interface StoredSession {
  version: number;
  storedAt: number;
  lastUpdated: number;
  ttlSeconds: number;
  conversationState: Record<string, unknown>;
  interruptedQueries: string[];
  recentInteractions: Record<string, unknown>[];
  userPreferences: Record<string, unknown>;
}

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const secretDigest = createHash("sha256")
  .update(process.env.GATEWAY_SECRET ?? "")
  .digest();

/** The caller the gateway headers name, or undefined when the secret is wrong or a header is missing. */
function callerOf(headers: Record<string, string | string[] | undefined>): Caller | undefined {
  const secret = headers["x-gateway-secret"];
  const tenantId = headers["x-tenant-id"];
  const userId = headers["x-user-id"];
  if (typeof secret !== "string" || typeof tenantId !== "string" || typeof userId !== "string") return undefined;
  const digest = createHash("sha256").update(secret).digest();
  return timingSafeEqual(digest, secretDigest) ? { tenantId, userId } : undefined;
}

const resolvers: IResolvers = {
  DateTime: DateTimeResolver,
  JSONObject: JSONObjectResolver,
  Query: {
    sessionContext: async (_root: unknown, args: { sessionId: string; userId?: string | null }, context) => {
      const caller = context.caller;
      if (!caller) throw new GraphQLError("not authenticated", { extensions: { code: "UNAUTHENTICATED" } });
      const userId = args.userId ?? caller.userId;
      if (userId !== caller.userId)
        throw new GraphQLError("another user's session", { extensions: { code: "FORBIDDEN" } });
      const key = sessionKey(caller.tenantId, userId, args.sessionId);
      const value = await redis.get(key);
      if (value === null) return null;
      const doc = JSON.parse(value) as StoredSession;
      return {
        id: Buffer.from(key).toString("base64url"),
        tenantId: caller.tenantId,
        userId,
        sessionId: args.sessionId,
        conversationState: doc.conversationState,
        interruptedQueries: doc.interruptedQueries,
        recentInteractions: doc.recentInteractions,
        userPreferences: doc.userPreferences,
        storedAt: new Date(doc.storedAt),
        lastUpdated: new Date(doc.lastUpdated),
        expiresAt: new Date(doc.lastUpdated + doc.ttlSeconds * 1000),
        ttlSeconds: doc.ttlSeconds,
        version: doc.version,
      };
    },
  },
};

const app = Fastify({ logger: false });
void app.register(mercurius, {
  schema,
  resolvers,
  jit: 1,
  context: (request) => ({ caller: callerOf(request.headers) }),
});
app.get("/health", async () => "ok");

app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" }).then(
  () => {
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ msg: "serving", port })}\n`);
  },
  (error: unknown) => {
    process.stderr.write(`peer failed to start: ${String(error)}\n`);
    process.exit(1);
  },
);

const stop = () => {
  void app.close().finally(() => {
    redis.disconnect();
    process.exit(0);
  });
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
