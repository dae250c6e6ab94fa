import type { ApolloServerPlugin } from "@apollo/server";
import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";
import { ErrorCode } from "../errors/error-code";

/** Options of SessionReadLimitPlugin. */
export interface SessionReadLimitOptions {
  /** Most sessions one request may read: `sessionContext` fields (aliases) plus `_entities` representations. */
  maxReads: number;
}

/**
 * Refuses a request that would read more than `maxReads` sessions, before anything is read, with
 * BAD_USER_INPUT (HTTP 400). It counts after the operation is resolved because `_entities` representations
 * usually arrive as a variable, which validation rules cannot see.
 */
export function SessionReadLimitPlugin(options: SessionReadLimitOptions): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, document, request }) {
          if (!operation) return;
          const reads = sessionReadsOf(document, operation, request.variables ?? {});
          if (reads > options.maxReads) {
            throw new GraphQLError(
              `this request reads ${reads} sessions; at most ${options.maxReads} sessions may be read in one request`,
              { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } },
            );
          }
        },
      };
    },
  };
}

/** How many sessions `operation` reads with these variables: `sessionContext` fields plus `_entities` items. */
export function sessionReadsOf(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  return countReads(operation, fragments, variables);
}

function countReads(
  operation: OperationDefinitionNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  variables: Record<string, unknown>,
): number {
  if (operation.operation !== "query") return 0;
  const seen = new Set<string>();
  const count = (selectionSet: SelectionSetNode): number => {
    let reads = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        reads += count(selection.selectionSet);
      } else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        // A fragment spread twice at the root selects the same fields again; GraphQL merges them.
        if (fragment && !seen.has(fragment.name.value)) {
          seen.add(fragment.name.value);
          reads += count(fragment.selectionSet);
        }
      } else if (selection.name.value === "sessionContext") {
        reads += 1;
      } else if (selection.name.value === "_entities") {
        const argument = selection.arguments?.find((a) => a.name.value === "representations");
        if (argument?.value.kind === Kind.LIST) reads += argument.value.values.length;
        else if (argument?.value.kind === Kind.VARIABLE) {
          const value = variables[argument.value.name.value];
          reads += Array.isArray(value) ? value.length : 1;
        }
      }
    }
    return reads;
  };
  return count(operation.selectionSet);
}
