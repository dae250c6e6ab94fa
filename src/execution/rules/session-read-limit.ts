import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";
import { ErrorCode } from "../../errors/error-code";
import type { OperationRule, OperationToAdmit } from "../operation-rule";

/** Options of SessionReadLimit. */
export interface SessionReadLimitOptions {
  /** Most sessions one request may read: `sessionContext` fields (aliases) plus `_entities` representations. */
  maxReads: number;
}

/** What an operation reads: a fixed count, or `variable` when `_entities` takes its representations from a variable. */
type ReadCount = number | "variable";

/**
 * Refuses a request that would read more than `maxReads` sessions, before anything is read, with
 * BAD_USER_INPUT (HTTP 400). It counts after the operation is resolved because `_entities` representations
 * usually arrive as a variable, which validation rules cannot see. The count of an operation that does not depend
 * on variables is kept with the operation (documents are cached by Apollo and the prepared lane), so a hot read
 * does not walk its document again.
 */
export function SessionReadLimit(options: SessionReadLimitOptions): OperationRule {
  const counted = new WeakMap<OperationDefinitionNode, ReadCount>();
  return {
    name: "session-read-limit",
    admit({ document, operation, variables }: OperationToAdmit) {
      let count = counted.get(operation);
      if (count === undefined) {
        count = readsOf(document, operation, undefined);
        counted.set(operation, count);
      }
      const reads = count === "variable" ? (readsOf(document, operation, variables) as number) : count;
      if (reads > options.maxReads) {
        throw new GraphQLError(
          `this request reads ${reads} sessions; at most ${options.maxReads} sessions may be read in one request`,
          { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } },
        );
      }
    },
  };
}

/**
 * How many sessions `operation` reads: `sessionContext` fields plus `_entities` items. Without `variables`,
 * `variable` when the count depends on them.
 */
function readsOf(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> | undefined,
): ReadCount {
  if (operation.operation !== "query") return 0;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const seen = new Set<string>();
  let dependsOnVariables = false;
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
          dependsOnVariables = true;
          const value = variables?.[argument.value.name.value];
          reads += Array.isArray(value) ? value.length : 1;
        }
      }
    }
    return reads;
  };
  const reads = count(operation.selectionSet);
  return dependsOnVariables && variables === undefined ? "variable" : reads;
}
