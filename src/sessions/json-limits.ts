import { BadUserInputError } from "../errors/errors";

/**
 * Deepest nesting of objects and arrays a context field may have (the field itself is level 1). JSON.stringify,
 * the encoders and the tools around them recurse: at a few thousand levels they throw "Maximum call stack size
 * exceeded" (V8's JSON.stringify did at ~5,000, on input of 30 KB). Real contexts nest a handful of levels.
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Most top-level keys `conversationState` or `userPreferences` may have, in a write and after a merge. Redis runs
 * one script at a time, and a merge's Redis time grows with the keys it merges on both sides: with at most this
 * many, no merge holds Redis for long (README, "Overload and noisy neighbours").
 */
export const MAX_OBJECT_KEYS = 500;

/**
 * Most entries `interruptedQueries` or `recentInteractions` may have in one write (a tenant's cap, up to 10,000, is
 * reached over several writes). Dropping the oldest entries beyond the cap costs Redis time per entry dropped: with
 * at most this many in a write, no write drops more.
 */
export const MAX_LIST_ENTRIES = 1000;

/** Refuses a list with more than MAX_LIST_ENTRIES entries, before any other work. */
export function assertListEntries(value: readonly unknown[] | null | undefined, field: string): void {
  if (value && value.length > MAX_LIST_ENTRIES) {
    throw new BadUserInputError(field, `has more than ${MAX_LIST_ENTRIES} entries (a write may add at most that many)`);
  }
}

/** Refuses an object with more than MAX_OBJECT_KEYS top-level keys, before any other work. */
export function assertObjectKeys(value: unknown, field: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return;
  let keys = 0;
  for (const key in value) if (Object.hasOwn(value, key) && ++keys > MAX_OBJECT_KEYS) break;
  if (keys > MAX_OBJECT_KEYS) {
    throw new BadUserInputError(field, `has more than ${MAX_OBJECT_KEYS} top-level keys`);
  }
}

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
