import { BadUserInputError } from "../errors/errors";

/**
 * Deepest nesting of objects and arrays a context field may have (the field itself is level 1). JSON.stringify,
 * the encoders and the tools around them recurse: at a few thousand levels they throw "Maximum call stack size
 * exceeded" (V8's JSON.stringify did at ~5,000, on input of 30 KB). Real contexts nest a handful of levels.
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Checks a JSON value a client sent for a context field before anything else looks at it: nested at most
 * MAX_JSON_DEPTH levels, and every number one JSON can carry back exactly (1e400 arrives as Infinity, which
 * JSON.stringify would store as null). Throws BAD_USER_INPUT naming `field`. Walks the value with its own stack,
 * so no input can make the check itself overflow.
 */
export function assertStorableJson(value: unknown, field: string): void {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  while (pending.length > 0) {
    const { value: next, depth } = pending.pop()!;
    if (typeof next === "number") {
      if (!Number.isFinite(next)) throw new BadUserInputError(field, "holds a number outside the range of a double");
      continue;
    }
    if (typeof next !== "object" || next === null) continue;
    if (depth > MAX_JSON_DEPTH) {
      throw new BadUserInputError(field, `is nested more than ${MAX_JSON_DEPTH} levels deep`);
    }
    const children = Array.isArray(next) ? next : Object.values(next);
    for (const child of children) {
      if (typeof child === "object" && child !== null) pending.push({ value: child, depth: depth + 1 });
      else if (typeof child === "number" && !Number.isFinite(child)) {
        throw new BadUserInputError(field, "holds a number outside the range of a double");
      }
    }
  }
}
