import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import type { GraphQLError, ValidationContext, ValidationRule } from "graphql";

/**
 * Limits that stop abusive documents at validation, before anything runs (GRAPHQL_VALIDATION_FAILED, with the
 * limit in the message). Sized so that the largest legitimate requests pass: 100 aliased session reads or 100
 * `_entities` representations with every field, a `userSessions` page, and the introspection query of Sandbox.
 */
export const DOCUMENT_LIMITS = Object.freeze({
  /** Deepest selection: our deepest real document (`userSessions { edges { node { … } } }`) is 4. */
  maxDepth: 10,
  /** Aliases per operation: the 100 session reads a request may make, plus room for aliased scalars. */
  maxAliases: 128,
  /**
   * graphql-armor's cost (objects 2, scalars 1, growing with depth, lists weighed by `first`): 100 aliased reads of
   * every field cost 2,150; a `userSessions(first: 100)` page of every field 6,463.
   */
  maxCost: 10_000,
});

// Report through the validation context, as graphql-armor's own Apollo adapter does: a rule that throws would
// reach Apollo as an unexpected error (500) instead of a validation failure.
const report = {
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
};

export function documentLimitRules(): ValidationRule[] {
  return [
    maxDepthRule({ n: DOCUMENT_LIMITS.maxDepth, exposeLimits: true, ...report }),
    maxAliasesRule({ n: DOCUMENT_LIMITS.maxAliases, exposeLimits: true, ...report }),
    costLimitRule({ maxCost: DOCUMENT_LIMITS.maxCost, exposeLimits: true, ...report }),
  ] as ValidationRule[];
}
