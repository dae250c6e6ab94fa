import { BadUserInputError } from "../errors/errors";

/** Largest id, in UTF-8 bytes, for tenant, user and session ids alike. */
export const MAX_ID_BYTES = 256;

// U+0000–U+001F and U+007F: they break logs and key tooling, and no real id needs them.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

// An unpaired UTF-16 surrogate has no UTF-8 form: written into a Redis key it becomes U+FFFD, so "\uD800",
// "\uDBFF" and "\uFFFD" would all share one key. Such a string is not a valid id.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `id` is not a valid id, or undefined when it is. */
export function idProblem(id: unknown): string | undefined {
  if (typeof id !== "string" || id.length === 0) return "must be a non-empty string";
  if (Buffer.byteLength(id, "utf8") > MAX_ID_BYTES) return `must be at most ${MAX_ID_BYTES} UTF-8 bytes`;
  if (CONTROL.test(id)) return "must not contain control characters";
  if (LONE_SURROGATE.test(id)) return "must be valid Unicode (an unpaired surrogate has no UTF-8 form)";
  return undefined;
}

/** Throws BAD_USER_INPUT naming `field` when `id` is not a valid id. */
export function assertValidId(id: unknown, field: string): asserts id is string {
  const problem = idProblem(id);
  if (problem) throw new BadUserInputError(field, problem);
}
