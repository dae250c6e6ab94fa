import type { IncomingMessage, ServerResponse } from "node:http";
import { HeaderMap, type ApolloServer } from "@apollo/server";
import bodyParser from "body-parser";
import cors from "cors";
import type { Logger } from "pino";
import type { ContextInput } from "../context/context-factory";
import type { RequestContext } from "../context/request-context";
import type { Metrics } from "../metrics/metrics";
import { ErrorCode } from "../errors/error-code";
import type { PreparedOperationLane } from "../execution/prepared/prepared-operation-lane";
import type { AnswerChunks } from "../execution/json-answer";
import { storeAnswers, type SessionStore } from "../sessions/session-store";
import type { RequestHeaders } from "../auth/authenticator";
import type { TenantLargeRequestBudget } from "../tenants/tenant-large-request-budget";
import { requestIdOf } from "./request-id";

export interface HttpAppOptions {
  apollo: ApolloServer<RequestContext>;
  context: (input: ContextInput) => Promise<RequestContext>;
  store: SessionStore;
  metrics: Metrics;
  logger: Logger;
  /** `"any"` echoes every origin; otherwise only these exact origins are echoed. */
  corsOrigins: "any" | readonly string[];
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
  /** Longest `/health/ready` waits for the store. */
  readinessTimeoutMs: number;
  /** Serves operations Apollo has already prepared; without it, Apollo serves every request. */
  lane?: PreparedOperationLane;
  /** GraphQL over SSE on `/graphql/stream` (live updates); without it, that path is not found. */
  stream?: Handler;
  /**
   * Each tenant's share of large requests, taken before the body is read; without it, every request is read. The
   * tenant is the authenticated caller's (`tenantOf`); a request that does not authenticate goes on, to be refused as
   * such.
   */
  largeRequests?: {
    budget: TenantLargeRequestBudget;
    tenantOf: (headers: RequestHeaders) => Promise<string>;
    /** Told of each refusal (metrics). */
    refused: () => void;
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A lean `node:http` request handler: `/graphql` through the prepared-operation lane when it can serve the request,
 * else through Apollo's `executeHTTPGraphQLRequest` (no Express), plus the health endpoints and `/metrics`. Allowed CORS origins are echoed back, never `*`. Every `/graphql` response,
 * errors included, carries `Server-Timing` with the total time and the time spent waiting on the store.
 */
export function createHttpApp(options: HttpAppOptions): Handler {
  const { apollo, logger } = options;
  const corsHandler = cors({
    origin: options.corsOrigins === "any" ? true : [...options.corsOrigins],
    credentials: true,
    maxAge: 600,
    // What /graphql answers: a preflight that allowed PUT or DELETE would promise what then fails with 405.
    methods: ["GET", "POST"],
    // Browsers hide response headers from scripts unless listed: the request id (for support), the timings, and when
    // to retry a request refused for the tenant's share of large requests.
    exposedHeaders: ["x-request-id", "server-timing", "retry-after"],
  });
  /**
   * CORS applies only to requests that name an `Origin` (browsers send it on every cross-origin request and
   * preflight); for the rest — servers, routers, the load behind a gateway — the cors middleware would only add
   * `Vary: Origin` and two headers no client reads, at ~5 % of the CPU of a small read. `Vary: Origin` stays, so a
   * cache never serves such an answer to a page of another origin.
   */
  const withCors = (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    if (req.headers.origin !== undefined || req.method === "OPTIONS") return corsHandler(req, res, next);
    res.setHeader("vary", "Origin");
    next();
  };
  const jsonBody = bodyParser.json({ limit: options.maxBodyBytes });
  const plainJsonBody = readJsonBody(options.maxBodyBytes);

  const graphql = (req: IncomingMessage & { body?: unknown }, res: ServerResponse): void => {
    const started = performance.now();
    let context: RequestContext | undefined;
    const serverTiming = () => {
      const total = `total;dur=${(performance.now() - started).toFixed(2)}`;
      return context ? `${total}, store;dur=${context.store.storeMs.toFixed(2)}` : total;
    };
    options.metrics.inFlight.inc();
    res.once("close", () => options.metrics.inFlight.dec());
    const requestId = requestIdOf(req);
    res.setHeader("x-request-id", requestId);
    withCors(req, res, () => {
      // Resource Timing shows Server-Timing to a page of another origin only when that origin is named here.
      const allowedOrigin = res.getHeader("access-control-allow-origin");
      if (typeof allowedOrigin === "string") res.setHeader("timing-allow-origin", allowedOrigin);
      const parseBody = isPlainJsonPost(req) ? plainJsonBody : jsonBody;
      admitLarge(req, res, serverTiming, () =>
        parseBody(req, res, (error?: BodyError) => {
          if (error) {
            const status = error.status ?? 400;
            const message =
              error.type === "entity.too.large"
                ? `request body is larger than ${options.maxBodyBytes} bytes`
                : `request body is not valid JSON: ${error.message ?? "parse error"}`;
            res.setHeader("server-timing", serverTiming());
            sendJson(res, status, { errors: [{ message, extensions: { code: ErrorCode.BAD_REQUEST } }] });
            return;
          }
          // Parsed only where it is read: a GET's parameters, and the search Apollo is handed.
          const url = () => new URL(req.url ?? "/", "http://localhost");
          const params = req.method === "GET" ? url().searchParams : undefined;
          const graphqlRequest = params
            ? { query: params.get("query") ?? undefined, operationName: params.get("operationName") }
            : ((req.body ?? {}) as ContextInput["graphqlRequest"]);
          const createContext = async () => (context = await options.context({ req, requestId, graphqlRequest }));
          const fromLane =
            options.lane !== undefined && req.method === "POST" && req.body !== undefined
              ? options.lane.run(req.body, req.headers, createContext)
              : Promise.resolve(undefined);
          fromLane
            .then(async (answer) => {
              if (answer !== undefined) {
                for (const [key, value] of answer.headers) res.setHeader(key, value);
                res.setHeader("server-timing", serverTiming());
                res.statusCode = answer.status;
                endWithAnswer(res, answer.body);
                return;
              }
              const headers = new HeaderMap();
              for (const [key, value] of Object.entries(req.headers)) {
                if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
              }
              const response = await apollo.executeHTTPGraphQLRequest({
                httpGraphQLRequest: {
                  method: req.method?.toUpperCase() ?? "GET",
                  headers,
                  search: url().search,
                  body: req.body,
                },
                context: createContext,
              });
              for (const [key, value] of response.headers) res.setHeader(key, value);
              res.setHeader("server-timing", serverTiming());
              res.statusCode = response.status ?? 200;
              if (response.body.kind === "complete") {
                res.end(response.body.string);
                return;
              }
              for await (const chunk of response.body.asyncIterator) res.write(chunk);
              res.end();
            })
            .catch((err: unknown) => {
              logger.error({ err, requestId }, "request failed outside GraphQL execution");
              if (!res.headersSent)
                sendJson(res, 500, {
                  errors: [{ message: "Internal server error", extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } }],
                });
              else res.end();
            });
        }),
      );
    });
  };

  /**
   * A large POST (by its Content-Length; one without is counted at the largest body) takes its size from its
   * tenant's budget before its body is read, or is answered at once: 503, SERVICE_UNAVAILABLE with `retryable: true`
   * and a Retry-After. The unread body is then discarded by Node, never parsed.
   */
  const admitLarge = (req: IncomingMessage, res: ServerResponse, serverTiming: () => string, next: () => void) => {
    const large = options.largeRequests;
    if (large === undefined || req.method !== "POST") return next();
    const declared = req.headers["content-length"];
    const bytes = declared === undefined ? options.maxBodyBytes : Number(declared);
    if (!large.budget.isLarge(bytes)) return next();
    large.tenantOf(req.headers).then(
      (tenantId) => {
        const waitMs = large.budget.take(tenantId, bytes);
        if (waitMs === 0) return next();
        large.refused();
        res.setHeader("retry-after", String(Math.ceil(waitMs / 1000)));
        res.setHeader("server-timing", serverTiming());
        sendJson(res, 503, {
          errors: [
            {
              message: `this tenant has sent its share of large requests to this server (TENANT_LARGE_BYTES_PER_SECOND); nothing was read — retry in ${waitMs} ms`,
              extensions: { code: ErrorCode.SERVICE_UNAVAILABLE, outcomeUnknown: false, retryable: true },
            },
          ],
        });
      },
      () => next(),
    );
  };

  const ready = (res: ServerResponse): void => {
    void storeAnswers(options.store, options.readinessTimeoutMs).then((answers) =>
      answers
        ? sendJson(res, 200, { status: "ready", store: options.store.kind })
        : sendJson(res, 503, { status: "unavailable", store: options.store.kind }),
    );
  };

  const metricsText = (res: ServerResponse): void => {
    options.metrics.registry
      .metrics()
      .then((text) => {
        res.writeHead(200, { "content-type": options.metrics.registry.contentType });
        res.end(text);
      })
      .catch((err: unknown) => {
        logger.error({ err }, "metrics could not be collected");
        sendJson(res, 500, { error: "metrics could not be collected" });
      });
  };

  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/graphql") return graphql(req, res);
    if (path === "/graphql/stream" && options.stream) {
      const stream = options.stream;
      return withCors(req, res, () => stream(req, res));
    }
    if (path === "/health/live" && (req.method === "GET" || req.method === "HEAD"))
      return sendJson(res, 200, { status: "live" });
    if (path === "/health/ready" && (req.method === "GET" || req.method === "HEAD")) return ready(res);
    if (path === "/metrics" && req.method === "GET") return metricsText(res);
    sendJson(res, 404, {
      error: "not found",
      paths: ["/graphql", "/graphql/stream", "/health/live", "/health/ready", "/metrics"],
    });
  };
}

/** What a body parser reports: body-parser's errors carry these fields, and so do readJsonBody's. */
interface BodyError {
  status?: number;
  message?: string;
  type?: string;
}

type BodyParser = (
  req: IncomingMessage & { body?: unknown },
  res: ServerResponse,
  next: (error?: BodyError) => void,
) => void;

// Every client sends one of these; anything else (another charset, a compressed body) goes to body-parser.
const PLAIN_JSON_TYPES = new Set([
  "application/json",
  "application/json; charset=utf-8",
  "application/json;charset=utf-8",
]);

/** A POST of UTF-8 JSON, not compressed: the request readJsonBody takes. */
function isPlainJsonPost(req: IncomingMessage): boolean {
  const type = req.headers["content-type"];
  return (
    req.method === "POST" &&
    req.headers["content-encoding"] === undefined &&
    type !== undefined &&
    PLAIN_JSON_TYPES.has(type.toLowerCase())
  );
}

/**
 * body-parser's `json()` for the common request, without its general machinery (type matching, charset decoding,
 * inflation), which cost about 3 % of the CPU of a read: the same limit, an empty body read as `{}`, only an
 * object or array at the top, a BOM dropped, and on any error the rest of the body read off before the answer.
 */
function readJsonBody(limit: number): BodyParser {
  return (req, _res, next) => {
    let size = 0;
    let tooLarge = Number(req.headers["content-length"]) > limit;
    let settled = false;
    const chunks: Buffer[] = [];
    const settle = (error?: BodyError) => {
      if (settled) return;
      settled = true;
      next(error);
    };
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.once("end", () => {
      if (tooLarge) return settle({ status: 413, type: "entity.too.large", message: "request entity too large" });
      let text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)).toString("utf8");
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      const first = /[^ \t\n\r]/.exec(text)?.[0]; // JSON white space only
      if (first === undefined) {
        req.body = {};
        return settle();
      }
      if (first !== "{" && first !== "[") return settle({ status: 400, message: "only an object or an array" });
      try {
        req.body = JSON.parse(text);
      } catch (error) {
        return settle({ status: 400, message: (error as Error).message });
      }
      settle();
    });
    // A client that goes away mid-body: nobody reads the answer, but the request must not be left pending.
    req.once("close", () => settle({ status: 400, message: "request aborted" }));
  };
}

/**
 * Ends the answer with its text, given whole or in pieces. Pieces are written under one cork, so that the headers
 * and every piece leave in one `writev`, each buffer as it is (the stored bytes of a large context, not copied).
 */
function endWithAnswer(res: ServerResponse, body: AnswerChunks | string): void {
  if (typeof body === "string") {
    res.end(body);
    return;
  }
  const { chunks, byteLength } = body;
  res.setHeader("content-length", byteLength);
  res.cork();
  for (let i = 0; i < chunks.length - 1; i++) res.write(chunks[i]);
  res.end(chunks[chunks.length - 1]);
  res.uncork();
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
