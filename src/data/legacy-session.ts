import { canonicalJson, JsonTextError } from "./json-text";
import {
  checkContext,
  checkId,
  documentOf,
  InputProblem,
  type ContextField,
  type ImportLimits,
  type SessionImport,
} from "./session-import";

/**
 * The earlier Python service's layout: one string key per session, `tenant:<tenant>:user:<user>:session:<session>`
 * with the ids verbatim (no escaping, no braces), holding JSON with snake_case fields `conversation_state`,
 * `interrupted_queries`, `recent_interactions`, `user_preferences`, `stored_at` and `last_updated` (ISO-8601 or epoch
 * seconds); the session's expiry is the key's TTL.
 */
export const LEGACY_PATTERN = "tenant:*:user:*:session:*";

const LEGACY_FIELDS: Record<ContextField, string> = {
  conversationState: "conversation_state",
  interruptedQueries: "interrupted_queries",
  recentInteractions: "recent_interactions",
  userPreferences: "user_preferences",
};

const EMPTY: Record<ContextField, string> = {
  conversationState: "{}",
  interruptedQueries: "[]",
  recentInteractions: "[]",
  userPreferences: "{}",
};

export interface LegacyIds {
  readonly tenantId: string;
  readonly userId: string;
  readonly sessionId: string;
}

/**
 * Every way `key` splits into `tenant:<t>:user:<u>:session:<s>` with non-empty ids. Ids may hold `:` (the key has
 * no escaping), so an id that itself contains `:user:` or `:session:` makes more than one split possible.
 */
export function legacyKeySplits(key: string): LegacyIds[] {
  if (!key.startsWith("tenant:")) return [];
  const splits: LegacyIds[] = [];
  for (let u = key.indexOf(":user:", 8); u >= 0; u = key.indexOf(":user:", u + 1)) {
    for (let s = key.indexOf(":session:", u + 7); s >= 0; s = key.indexOf(":session:", s + 1)) {
      const sessionId = key.slice(s + 9);
      if (sessionId === "") continue;
      splits.push({ tenantId: key.slice(7, u), userId: key.slice(u + 6, s), sessionId });
    }
  }
  return splits;
}

/** What a legacy key became: the session to write, and notes on what was filled in or changed on the way. */
export interface LegacyConversion {
  readonly session: SessionImport;
  readonly notes: string[];
}

export interface LegacySource {
  readonly key: string;
  readonly value: string;
  /** PTTL of the key: ms left, or -1 when it has no expiry. */
  readonly pttl: number;
  /** The source's clock (epoch ms) when the value was read. */
  readonly now: number;
}

export interface LegacyOptions extends ImportLimits {
  /** TTL given to a key without one (seconds). */
  readonly ttlIfNone: number;
}

/**
 * Converts one legacy key and value into a session of this service, or throws InputProblem with the reason it
 * cannot be moved; undefined for a document of this service's own layout, which the pattern matches too. The context fields keep their text exactly (key order, numbers, unicode; only made canonical);
 * missing fields are empty, missing times are taken from each other or else the time of the move (noted); the
 * version is 1 and there is no change log (the legacy service kept none).
 */
export function convertLegacy(source: LegacySource, options: LegacyOptions): LegacyConversion | undefined {
  const notes: string[] = [];
  // A session this service wrote (the same Redis may hold both layouts during a move): not legacy, not a problem.
  if (source.value.startsWith('{"version":')) return undefined;
  let parsed;
  try {
    parsed = canonicalJson(source.value, { children: true });
  } catch (error) {
    if (error instanceof JsonTextError) throw new InputProblem(`value is not JSON (${error.message})`);
    throw error;
  }
  if (parsed.type !== "object") throw new InputProblem(`value is a JSON ${parsed.type}, not an object`);
  if (parsed.roundedNumbers > 0)
    notes.push(`${parsed.roundedNumbers} integer(s) longer than a double holds stored as the nearest double`);
  const member = (name: string) => {
    const child = parsed.children.find((c) => c.key === name);
    return child === undefined || child.type === "null" ? undefined : child;
  };

  const ids = idsOf(source.key, (name) => {
    const child = member(name);
    return child?.type === "string" ? (JSON.parse(child.text) as string) : undefined;
  });

  const texts = {} as Record<ContextField, string>;
  const values = {} as Record<ContextField, unknown>;
  const missing: string[] = [];
  for (const field of Object.keys(LEGACY_FIELDS) as ContextField[]) {
    const child = member(LEGACY_FIELDS[field]);
    if (child === undefined) missing.push(LEGACY_FIELDS[field]);
    texts[field] = child?.text ?? EMPTY[field];
    values[field] = JSON.parse(texts[field]);
  }
  if (missing.length > 0) notes.push(`${missing.join(", ")} missing: empty`);
  const checked = checkContext({ values, texts }, options, LEGACY_FIELDS);

  const storedAtGiven = timeOf(member("stored_at")?.text, "stored_at");
  const lastUpdatedGiven = timeOf(member("last_updated")?.text, "last_updated");
  let lastUpdated = lastUpdatedGiven ?? storedAtGiven;
  let storedAt = storedAtGiven ?? lastUpdatedGiven;
  if (lastUpdated === undefined || storedAt === undefined) {
    notes.push("stored_at and last_updated missing: the time of the move");
    lastUpdated = storedAt = source.now;
  } else if (storedAtGiven === undefined || lastUpdatedGiven === undefined) {
    notes.push(`${storedAtGiven === undefined ? "stored_at" : "last_updated"} missing: taken from the other`);
  }
  if (storedAt > lastUpdated) {
    notes.push("stored_at after last_updated: set to last_updated");
    storedAt = lastUpdated;
  }

  let expiresAt: number;
  if (source.pttl >= 0) expiresAt = source.now + source.pttl;
  else {
    expiresAt = source.now + options.ttlIfNone * 1000;
    notes.push(`no TTL at the source: ${options.ttlIfNone} s from the move`);
  }
  // The TTL each later write keeps by default: the session's life from its last write to its expiry.
  const ttlSeconds = Math.min(Math.max(Math.ceil((expiresAt - lastUpdated) / 1000), 1), options.maxTtlSeconds);

  const header = { version: 1, storedAt, lastUpdated, ttlSeconds };
  const { document, change } = documentOf(header, checked);
  return {
    // The expiry goes as what is left of it, counted again on the destination's clock when the session is written.
    session: {
      ...ids,
      version: 1,
      lastUpdated,
      expiresAt: 0,
      remainingTtlMs: Math.max(expiresAt - source.now, 1),
      document,
      change,
      history: [],
    },
    notes,
  };
}

/**
 * The ids of a legacy key: its only split, or the split that the value's own `tenant_id`, `user_id` and
 * `session_id` name when the key splits several ways.
 */
function idsOf(key: string, field: (name: string) => string | undefined): LegacyIds {
  const splits = legacyKeySplits(key);
  if (splits.length === 0) throw new InputProblem("key is not tenant:<tenant>:user:<user>:session:<session>");
  let ids = splits[0];
  if (splits.length > 1) {
    const named = splits.filter(
      (split) =>
        split.tenantId === field("tenant_id") &&
        split.userId === field("user_id") &&
        split.sessionId === field("session_id"),
    );
    if (named.length !== 1)
      throw new InputProblem(
        `key splits into ids ${splits.length} ways (an id holds ":user:" or ":session:") and the value's tenant_id, user_id and session_id do not pick one`,
      );
    ids = named[0];
  }
  return {
    tenantId: checkId(ids.tenantId, "tenant id"),
    userId: checkId(ids.userId, "user id"),
    sessionId: checkId(ids.sessionId, "session id"),
  };
}

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * A legacy time (ISO-8601 text, or epoch seconds as a number or a numeric string) in epoch ms; undefined when
 * absent. A time without an offset is UTC (Python's `datetime.utcnow().isoformat()` writes none).
 */
export function timeOf(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  const value: unknown = JSON.parse(text);
  const seconds = typeof value === "string" && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  if (typeof seconds === "number") {
    if (!(seconds >= 0) || seconds > 1e11) throw new InputProblem(`${field} ${text} is not epoch seconds`);
    return Math.round(seconds * 1000);
  }
  const match = typeof value === "string" ? ISO_8601.exec(value) : null;
  if (match === null) throw new InputProblem(`${field} ${text} is neither ISO-8601 nor epoch seconds`);
  const [, year, month, day, hour, minute, second, fraction, zone] = match;
  let ms = Date.UTC(
    Number(year),
    Number(month) - 1,
    Number(day),
    Number(hour),
    Number(minute),
    Number(second ?? 0),
    Math.floor(Number(`0.${fraction ?? 0}`) * 1000),
  );
  if (zone !== undefined && zone.toUpperCase() !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
  }
  if (!Number.isFinite(ms) || ms < 0 || Number(month) > 12 || Number(day) > 31 || Number(hour) > 23)
    throw new InputProblem(`${field} ${text} is not a valid time`);
  return ms;
}
