import type { IncomingHttpHeaders } from "node:http";
import type { ApolloServerPlugin } from "@apollo/server";
import {
  BREAK,
  execute,
  getNamedType,
  isAbstractType,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  GraphQLError,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from "graphql";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";
import { LRUCache } from "lru-cache";
import type { RequestContext } from "../context/request-context";
import { ErrorCode } from "../errors/error-code";
import type { Metrics } from "../metrics/metrics";
import type { OperationRecorder } from "../plugins/latency.plugin";
import { sessionReadsOf } from "../plugins/session-read-limit.plugin";

/** A document Apollo parsed and validated, and the operation it resolved for the request's operation name. */
interface PreparedOperation {
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  /**
   * Sessions it reads, when that does not depend on variables (only `_entities` representations do); undefined:
   * counted for each request.
   */
  readonly fixedReads: number | undefined;
  /** Compiled on first use by the lane; null when graphql-jit could not compile it (graphql-js runs it then). */
  compiled?: CompiledQuery | null;
}

/** What the lane answers with; the HTTP layer adds its own headers (request id, CORS, Server-Timing). */
export interface LaneResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
  context: RequestContext;
}

export interface PreparedOperationLaneOptions {
  /** The schema Apollo serves (the same object, with the same resolvers and root-field timing). */
  schema: GraphQLSchema;
  recorder: OperationRecorder;
  metrics: Metrics;
  /** Apollo's `formatError`, applied to every error the lane sends. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  /** Apollo's `includeStacktraceInErrorResponses`. */
  includeStacktrace: boolean;
  /** Most sessions one request may read (SessionReadLimitPlugin's limit). */
  maxSessionReads: number;
  /** Room for prepared documents, counted like Apollo's document cache: the length of their JSON. */
  maxPreparedBytes?: number;
  /** Most prepared operations kept (default 1000): a service has a few dozen hot ones. */
  maxPreparedOperations?: number;
}

const APPLICATION_JSON = "application/json; charset=utf-8";
const GRAPHQL_RESPONSE_JSON = "application/graphql-response+json; charset=utf-8";

// The response type Apollo negotiates for the `accept` headers clients really send (curl, fetch, Apollo Client,
// Sandbox); any other `accept` goes through Apollo, which negotiates it in full.
const RESPONSE_TYPE_BY_ACCEPT = new Map<string | undefined, string>([
  [undefined, APPLICATION_JSON],
  ["*/*", APPLICATION_JSON],
  ["application/json", APPLICATION_JSON],
  ["application/json, */*", APPLICATION_JSON],
  ["application/graphql-response+json", GRAPHQL_RESPONSE_JSON],
  ["application/graphql-response+json, application/json", GRAPHQL_RESPONSE_JSON],
  ["application/graphql-response+json,application/json;q=0.9", GRAPHQL_RESPONSE_JSON],
  ["application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON],
]);

/**
 * The fast path for operations the server has already seen. Apollo's request pipeline costs most of the CPU of a
 * simple read (hashing the query, a dozen plugin hooks, header maps, content negotiation, per-request objects
 * for the garbage collector). Once Apollo has parsed and validated a document for an operation name, this lane
 * runs later requests with the same query text and operation name on the same schema itself — compiled by
 * graphql-jit, or with graphql-js `execute` where graphql-jit is not used (see `compile`) — and reports to the same
 * recorder as the latency plugin.
 *
 * It serves only what it can answer exactly as Apollo would; everything else returns undefined before anything
 * has been read or written, and Apollo serves the request: a query it has not seen, a persisted-query hash,
 * a federation trace request, an unusual `accept` header, credentials the context factory refuses, variables that
 * do not coerce, more session reads than allowed, and every request once the server is stopping.
 */
export class PreparedOperationLane {
  /** Hands the lane every operation Apollo resolved, after parsing and validation passed. */
  readonly plugin: ApolloServerPlugin<RequestContext>;
  private readonly prepared: LRUCache<string, PreparedOperation>;
  private open = true;

  constructor(private readonly options: PreparedOperationLaneOptions) {
    this.prepared = new LRUCache<string, PreparedOperation>({
      // Each entry also holds graphql-jit's compiled code, which the size does not count: the count bounds that.
      max: options.maxPreparedOperations ?? 1000,
      maxSize: options.maxPreparedBytes ?? 30 * 1024 * 1024,
      sizeCalculation: (prepared) => JSON.stringify(prepared.document).length,
    });
    this.plugin = {
      serverWillStart: async () => ({
        // From here on Apollo refuses new operations; the lane leaves them to it.
        serverWillStop: async () => {
          this.open = false;
        },
      }),
      requestDidStart: async () => ({
        didResolveOperation: async ({ request, document, operation }) => {
          if (
            typeof request.query !== "string" ||
            (operation?.operation !== "query" && operation?.operation !== "mutation")
          )
            return;
          const key = keyOf(request.query, request.operationName);
          if (this.prepared.has(key)) return;
          const fixedReads = request.query.includes("_entities") ? undefined : sessionReadsOf(document, operation, {});
          this.prepared.set(key, { document, operation, fixedReads });
        },
      }),
    };
  }

  /**
   * Serves a parsed JSON POST body, or returns undefined for Apollo to serve it (nothing was executed then).
   * `createContext` is the same context factory Apollo uses.
   */
  async run(
    body: unknown,
    headers: IncomingHttpHeaders,
    createContext: () => Promise<RequestContext>,
  ): Promise<LaneResponse | undefined> {
    if (!this.open || headers["apollo-federation-include-trace"] !== undefined) return undefined;
    const contentType = RESPONSE_TYPE_BY_ACCEPT.get(headers.accept);
    if (contentType === undefined || !isPlainObject(body)) return undefined;
    const { query, operationName, variables, extensions } = body;
    if (typeof query !== "string") return undefined;
    if (operationName !== undefined && operationName !== null && typeof operationName !== "string") return undefined;
    if (variables !== undefined && variables !== null && !isPlainObject(variables)) return undefined;
    if (
      extensions !== undefined &&
      extensions !== null &&
      (!isPlainObject(extensions) || "persistedQuery" in extensions)
    )
      return undefined;
    const prepared = this.prepared.get(keyOf(query, operationName));
    if (prepared === undefined) return undefined;
    const variableValues = variables ?? {};
    const reads = prepared.fixedReads ?? sessionReadsOf(prepared.document, prepared.operation, variableValues);
    if (reads > this.options.maxSessionReads) return undefined;

    const started = performance.now();
    let context: RequestContext;
    try {
      context = await createContext();
    } catch {
      return undefined;
    }
    if (prepared.compiled === undefined) prepared.compiled = this.compile(prepared.document, operationName);
    const result: ExecutionResult = prepared.compiled
      ? await prepared.compiled.query(undefined, context, variableValues)
      : await execute({
          schema: this.options.schema,
          document: prepared.document,
          operationName,
          variableValues,
          contextValue: context,
        });
    // No data means graphql-js stopped before running anything (variables that do not coerce): Apollo words that.
    if (result.data === undefined) return undefined;

    const responseHeaders = new Map([["content-type", contentType]]);
    let status = 200;
    let formattedErrors: GraphQLFormattedError[] | undefined;
    if (result.errors !== undefined && result.errors.length > 0) {
      this.options.recorder.errorsEncountered(result.errors, context);
      formattedErrors = result.errors.map((error) => {
        const { formatted, http } = this.format(error);
        if (http?.status !== undefined) status = http.status;
        for (const [name, value] of http?.headers ?? []) responseHeaders.set(name, value);
        return formatted;
      });
    }
    const text = `${JSON.stringify({ errors: formattedErrors, data: result.data, extensions: result.extensions })}\n`;
    this.options.recorder.finished({
      subject: context,
      operationName: prepared.operation.name?.value ?? null,
      operationType: prepared.operation.operation,
      failed: formattedErrors !== undefined,
      durationMs: performance.now() - started,
    });
    this.options.metrics.preparedLaneRequests.inc();
    return { status, headers: responseHeaders, body: text, context };
  }

  /**
   * graphql-jit's compiled form of the document, or null for graphql-js to run it. Only documents over concrete
   * object types are compiled: with a union in between (`_entities` returns `[_Entity]!`) graphql-jit dropped a
   * failed list item where graphql-js gives null (the federation tests caught it), and introspection is left to
   * graphql-js as well.
   */
  private compile(document: DocumentNode, operationName: string | null | undefined): CompiledQuery | null {
    const { schema } = this.options;
    const typeInfo = new TypeInfo(schema);
    let concrete = true;
    visit(
      document,
      visitWithTypeInfo(typeInfo, {
        Field(node) {
          const type = typeInfo.getType();
          const introspection = node.name.value.startsWith("__") && node.name.value !== "__typename";
          if (introspection || type === null || isAbstractType(getNamedType(type))) {
            concrete = false;
            return BREAK;
          }
          return undefined;
        },
      }),
    );
    if (!concrete) return null;
    try {
      const compiled = compileQuery(schema, document, operationName ?? undefined);
      return isCompiledQuery(compiled) ? compiled : null;
    } catch {
      return null; // a document graphql-jit cannot compile still runs, on graphql-js
    }
  }

  /**
   * What Apollo does to each error it sends: a code always (INTERNAL_SERVER_ERROR when none), `extensions.http`
   * taken out into the response's status and headers, the stack in development, then `formatError`; an error
   * thrown by `formatError` itself becomes "Internal server error".
   */
  private format(error: GraphQLError): { formatted: GraphQLFormattedError; http?: HttpExtension } {
    let http: HttpExtension | undefined;
    const enrich = (graphqlError: GraphQLError): GraphQLFormattedError => {
      // graphql-jit's errors have no `extensions` at all when the error they wrap had none.
      const own = (graphqlError.extensions as GraphQLError["extensions"] | undefined) ?? {};
      const extensions: Record<string, unknown> = { ...own, code: own.code ?? ErrorCode.INTERNAL_SERVER_ERROR };
      if (isHttpExtension(extensions.http)) {
        http = extensions.http;
        delete extensions.http;
      }
      if (this.options.includeStacktrace) extensions.stacktrace = graphqlError.stack?.split("\n");
      return { ...graphqlError.toJSON(), extensions };
    };
    try {
      return { formatted: this.options.formatError(enrich(error), error), http };
    } catch (formattingError) {
      if (this.options.includeStacktrace) {
        const asError = formattingError instanceof Error ? formattingError : new Error(String(formattingError));
        return { formatted: enrich(new GraphQLError(asError.message, { originalError: asError })), http };
      }
      return { formatted: { message: "Internal server error", extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } } };
    }
  }
}

interface HttpExtension {
  status?: number;
  headers?: Map<string, string>;
}

function isHttpExtension(value: unknown): value is HttpExtension {
  return (
    typeof value === "object" &&
    value !== null &&
    (!("status" in value) || typeof value.status === "number") &&
    (!("headers" in value) || value.headers instanceof Map)
  );
}

function keyOf(query: string, operationName: string | null | undefined): string {
  return `${operationName ?? ""}\n${query}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
