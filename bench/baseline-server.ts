/**
 * The bare baseline of `npm run bench`: the least a server can do to answer "read one session" over HTTP —
 * `node:http` plus one ioredis `GET` — so the GraphQL server's throughput can be given as a ratio of it.
 *
 *   GET /json/<tenant>/<user>/<session>  GET, then JSON.parse and JSON.stringify into the body the GraphQL server
 *                                       answers (`{"data":{"sessionContext":{…}}}`, same fields, ISO dates)
 *   GET /raw/<tenant>/<user>/<session>   GET, the stored document as is (no JSON work at all)
 *
 * REDIS_URL and PORT (0: any) from the environment; prints one JSON line `{"msg":"serving","port":…}`.
 * Listens on 127.0.0.1 only. Ids are passed URI-encoded.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { sessionKey } from "../src/store/keys";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { enableOfflineQueue: true });

const server = createServer((req, res) => {
  const [, mode, tenant, user, session] = (req.url ?? "").split("/");
  if ((mode !== "json" && mode !== "raw") || !tenant || !user || !session) {
    res.writeHead(404).end();
    return;
  }
  const tenantId = decodeURIComponent(tenant);
  const userId = decodeURIComponent(user);
  const sessionId = decodeURIComponent(session);
  const key = sessionKey(tenantId, userId, sessionId);
  redis.get(key).then(
    (value) => {
      let body: string;
      if (mode === "raw") body = value ?? "null";
      else if (value === null) body = '{"data":{"sessionContext":null}}';
      else {
        const doc = JSON.parse(value);
        body = JSON.stringify({
          data: {
            sessionContext: {
              id: Buffer.from(key).toString("base64url"),
              tenantId,
              userId,
              sessionId,
              conversationState: doc.conversationState,
              interruptedQueries: doc.interruptedQueries,
              recentInteractions: doc.recentInteractions,
              userPreferences: doc.userPreferences,
              storedAt: new Date(doc.storedAt).toISOString(),
              lastUpdated: new Date(doc.lastUpdated).toISOString(),
              expiresAt: new Date(doc.lastUpdated + doc.ttlSeconds * 1000).toISOString(),
              ttlSeconds: doc.ttlSeconds,
              version: doc.version,
            },
          },
        });
      }
      res.writeHead(200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    },
    () => {
      res.writeHead(503).end();
    },
  );
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ msg: "serving", port: (server.address() as AddressInfo).port })}\n`);
});

const stop = () => {
  server.close();
  redis.disconnect();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
