import type { ApolloServerPlugin } from "@apollo/server";
import type { DocumentNode, OperationDefinitionNode } from "graphql";
import type { CompiledQuery } from "graphql-jit";
import { LRUCache } from "lru-cache";
import type { RequestContext } from "../../context/request-context";

/** A document Apollo parsed and validated, and the operation it resolved for the request's operation name. */
export interface PreparedOperation {
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  /** Compiled on first use; null when graphql-jit is not used for it (graphql-js runs it then). */
  compiled?: CompiledQuery | null;
}

/** Options of PreparedOperationCache. */
export interface PreparedOperationCacheOptions {
  /** Room for prepared documents, counted like Apollo's document cache: the length of their JSON. Default 30 MB. */
  maxBytes?: number;
  /** Most prepared operations kept (default 1000): a service has a few dozen hot ones. */
  maxOperations?: number;
}

/**
 * The queries and mutations Apollo has parsed, validated and resolved, by query text and operation name, filled by
 * its `plugin` from Apollo's `didResolveOperation`. Closed once Apollo starts stopping: from then on Apollo refuses
 * new operations, and the lane leaves every request to it.
 */
export class PreparedOperationCache {
  readonly plugin: ApolloServerPlugin<RequestContext>;
  private readonly prepared: LRUCache<string, PreparedOperation>;
  private open = true;

  constructor(options: PreparedOperationCacheOptions = {}) {
    this.prepared = new LRUCache<string, PreparedOperation>({
      // Each entry also holds graphql-jit's compiled code, which the size does not count: the count bounds that.
      max: options.maxOperations ?? 1000,
      maxSize: options.maxBytes ?? 30 * 1024 * 1024,
      sizeCalculation: (prepared) => JSON.stringify(prepared.document).length,
    });
    this.plugin = {
      serverWillStart: async () => ({
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
          if (!this.prepared.has(key)) this.prepared.set(key, { document, operation });
        },
      }),
    };
  }

  /** Whether the server still takes new operations. */
  get isOpen(): boolean {
    return this.open;
  }

  get(query: string, operationName: string | null | undefined): PreparedOperation | undefined {
    return this.prepared.get(keyOf(query, operationName));
  }
}

function keyOf(query: string, operationName: string | null | undefined): string {
  return `${operationName ?? ""}\n${query}`;
}
