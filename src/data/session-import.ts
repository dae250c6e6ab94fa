import { idProblem } from "../sessions/ids";
import { assertStorableJson } from "../sessions/json-limits";
import type { SessionToWrite } from "../store/redis/redis-session-transfer";
import type { ContextTexts } from "../store/session-document";
import { CONTEXT_JSON_OVERHEAD, encodeDocumentText } from "../store/session-document";

/**
 * One session ready to be written by the import script (import-session-7.lua): its ids, the document in the
 * stored layout, when its key expires, and its change log entries. Both `import` (from an export file) and
 * `migrate-legacy` produce these.
 */
export type SessionImport = SessionToWrite;

/** What bounds a session the tool writes: the service's own limits (Config). */
export interface ImportLimits {
  readonly maxContextBytes: number;
  readonly maxTtlSeconds: number;
}

/** Why one input (a line, a legacy key) is not written: the message is the reason shown in the report. */
export class InputProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputProblem";
  }
}

/** The four context fields: their values (for checks) and their canonical texts (what is written). */
export interface ContextInput {
  readonly values: Record<ContextField, unknown>;
  readonly texts: Record<ContextField, string>;
}

export type ContextField = "conversationState" | "interruptedQueries" | "recentInteractions" | "userPreferences";

/** Throws InputProblem naming `field` when `id` is not an id the service accepts (ids.ts). */
export function checkId(id: unknown, field: string): string {
  const problem = idProblem(id);
  if (problem) throw new InputProblem(`${field} ${problem}`);
  return id as string;
}

/**
 * Checks the four fields as the service checks a store (types, JSON limits, MAX_CONTEXT_BYTES) and returns their
 * texts with the lists' lengths. `names` says what to call each field in a reason (the legacy names differ).
 */
export function checkContext(
  input: ContextInput,
  limits: ImportLimits,
  names: Record<ContextField, string>,
): ContextTexts {
  const { conversationState, interruptedQueries, recentInteractions, userPreferences } = input.values;
  const object = (value: unknown, field: ContextField) => {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputProblem(`${names[field]} is not a JSON object`);
    storable(value, names[field]);
  };
  object(conversationState, "conversationState");
  object(userPreferences, "userPreferences");
  if (!Array.isArray(interruptedQueries) || !interruptedQueries.every((query) => typeof query === "string"))
    throw new InputProblem(`${names.interruptedQueries} is not a list of strings`);
  if (!Array.isArray(recentInteractions)) throw new InputProblem(`${names.recentInteractions} is not a list`);
  recentInteractions.forEach((item: unknown, i) => {
    if (typeof item !== "object" || item === null || Array.isArray(item))
      throw new InputProblem(`${names.recentInteractions}.${i} is not a JSON object`);
    storable(item, `${names.recentInteractions}.${i}`);
  });
  const { texts } = input;
  const bytes =
    CONTEXT_JSON_OVERHEAD +
    Buffer.byteLength(texts.conversationState) +
    Buffer.byteLength(texts.interruptedQueries) +
    Buffer.byteLength(texts.recentInteractions) +
    Buffer.byteLength(texts.userPreferences);
  if (bytes > limits.maxContextBytes)
    throw new InputProblem(`context is ${bytes} bytes, over MAX_CONTEXT_BYTES (${limits.maxContextBytes})`);
  return {
    conversationState: texts.conversationState,
    interruptedQueries: texts.interruptedQueries,
    interruptedCount: interruptedQueries.length,
    recentInteractions: texts.recentInteractions,
    recentCount: recentInteractions.length,
    userPreferences: texts.userPreferences,
  };
}

function storable(value: unknown, field: string): void {
  try {
    assertStorableJson(value, field);
  } catch (error) {
    throw new InputProblem((error as Error).message); // BadUserInputError: "<field>: <why>"
  }
}

/** The session's document and its announcement's change, from checked parts. */
export function documentOf(
  header: { version: number; storedAt: number; lastUpdated: number; ttlSeconds: number },
  texts: ContextTexts,
): { document: string; change: string } {
  return {
    document: encodeDocumentText(header, texts),
    change:
      `{"conversationState":${texts.conversationState},"interruptedQueries":${texts.interruptedQueries},` +
      `"recentInteractions":${texts.recentInteractions},"userPreferences":${texts.userPreferences}}`,
  };
}
