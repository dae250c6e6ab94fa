import { unwrapResolverError } from "@apollo/server/errors";
import type { GraphQLFormattedError } from "graphql";
import type { Logger } from "pino";
import { ErrorCode } from "../errors/error-code";
import type { ErrorFormatter } from "./execution-seam";

// graphql-js names the offending input in the message of a variable it could not coerce:
// `Variable "$input" got invalid value [1] at "input.conversationState"; Expected type "JSONObject". …`
const INVALID_VARIABLE = /^Variable "\$([^"]+)" got invalid value [\s\S]*?(?: at "([^"]+)")?; /;

/**
 * Errors with one of our codes pass through; a variable graphql-js refused gets `extensions.field` like our own
 * BAD_USER_INPUT errors. Anything else is a bug or an unexpected failure: it is logged with its stack here and,
 * in production, reaches the client only as "Internal server error".
 */
export function createErrorFormatter(logger: Logger, production: boolean): ErrorFormatter {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    if (formatted.extensions?.code === ErrorCode.BAD_USER_INPUT && formatted.extensions.field === undefined) {
      const match = INVALID_VARIABLE.exec(formatted.message);
      if (match) return { ...formatted, extensions: { ...formatted.extensions, field: match[2] ?? match[1] } };
    }
    if (formatted.extensions?.code !== ErrorCode.INTERNAL_SERVER_ERROR) return formatted;
    logger.error({ err: unwrapResolverError(error), path: formatted.path }, "internal error");
    if (!production) return formatted;
    return {
      message: "Internal server error",
      path: formatted.path,
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  };
}
