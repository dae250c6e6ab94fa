import type { SessionRef } from "../sessions/session-record";
import { withoutSpans } from "../store/session-document";
import { canonicalJson, JsonTextError, type JsonChild } from "./json-text";
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
 * One line of an export file (NDJSON), in this order:
 *
 *   {"tenantId":…,"userId":…,"sessionId":…,"version":n,"storedAt":ms,"lastUpdated":ms,"ttlSeconds":s,
 *    "conversationState":{…},"interruptedQueries":[…],"recentInteractions":[…],"userPreferences":{…},
 *    "expiresAt":ms,"remainingTtlMs":ms,"history":[entry…]}
 *
 * The part from `version` to `userPreferences` is the stored document as it is (session-document.ts) without its
 * spans trailer, so the contexts are exported byte for byte; `history` is the change log, newest first, each entry
 * as stored (history-entry.ts). `expiresAt` is when the key expires at the source (epoch ms, the source's clock);
 * `remainingTtlMs` is what was left of it when the line was read.
 */
export interface ExportedSession {
  readonly tenantId: string;
  readonly ref: SessionRef;
  readonly document: string;
  readonly expiresAt: number;
  readonly remainingTtlMs: number;
  readonly history: readonly string[];
}

const CONTEXT_FIELDS: readonly ContextField[] = [
  "conversationState",
  "interruptedQueries",
  "recentInteractions",
  "userPreferences",
];
const SAME_NAMES = Object.fromEntries(CONTEXT_FIELDS.map((field) => [field, field])) as Record<ContextField, string>;

/** Most change log entries a line may carry: the largest historyDepth a tenant may set. */
export const MAX_HISTORY_ENTRIES = 1000;

/** Deepest nesting of a log entry: a context field (128 levels) sits at most 3 levels down in one. */
const MAX_ENTRY_DEPTH = 128 + 3;

/** The export line of a session (no line break). */
export function exportLine(session: ExportedSession): string {
  const document = withoutSpans(session.document);
  return lineOf(
    session.tenantId,
    session.ref,
    document.slice(1, -1),
    session.expiresAt,
    session.remainingTtlMs,
    session.history,
  );
}

function lineOf(
  tenantId: string,
  ref: SessionRef,
  body: string,
  expiresAt: number,
  remainingTtlMs: number,
  history: readonly string[],
): string {
  return (
    `{"tenantId":${JSON.stringify(tenantId)},"userId":${JSON.stringify(ref.userId)},` +
    `"sessionId":${JSON.stringify(ref.sessionId)},${body},"expiresAt":${expiresAt},` +
    `"remainingTtlMs":${remainingTtlMs},"history":[${history.join(",")}]}`
  );
}

/**
 * A line of an export file as a session to import, checked as the service checks a write: ids (ids.ts), the
 * fields' types, the JSON limits, MAX_CONTEXT_BYTES and MAX_TTL_SECONDS, and a change log that runs down from the
 * session's version. Throws InputProblem with the reason.
 *
 * A line this tool wrote is taken as it is (it is canonical already: re-writing it from its parsed value gives the
 * same text); any other valid JSON (white space, other member order, other escapes) is made canonical by the
 * json-text scanner, which keeps each object's key order.
 */
export function parseExportLine(line: string, limits: ImportLimits): SessionImport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new InputProblem(`not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new InputProblem("not a JSON object");
  const value = parsed as Record<string, unknown>;

  const tenantId = checkId(value.tenantId, "tenantId");
  const userId = checkId(value.userId, "userId");
  const sessionId = checkId(value.sessionId, "sessionId");
  const version = wholeNumber(value.version, "version", 1);
  const storedAt = wholeNumber(value.storedAt, "storedAt", 0);
  const lastUpdated = wholeNumber(value.lastUpdated, "lastUpdated", 0);
  const ttlSeconds = wholeNumber(value.ttlSeconds, "ttlSeconds", 1);
  if (ttlSeconds > limits.maxTtlSeconds)
    throw new InputProblem(`ttlSeconds ${ttlSeconds} is over MAX_TTL_SECONDS (${limits.maxTtlSeconds})`);
  const expiresAt = value.expiresAt === undefined ? undefined : wholeNumber(value.expiresAt, "expiresAt", 0);
  const remaining =
    value.remainingTtlMs === undefined ? undefined : wholeNumber(value.remainingTtlMs, "remainingTtlMs", 0);
  const history = value.history === undefined ? [] : value.history;
  if (!Array.isArray(history)) throw new InputProblem("history is not a list");
  if (history.length > MAX_HISTORY_ENTRIES)
    throw new InputProblem(`history has ${history.length} entries, more than ${MAX_HISTORY_ENTRIES}`);
  history.forEach((entry: unknown, i) => checkEntry(entry, i, version));

  const values = {} as Record<ContextField, unknown>;
  for (const field of CONTEXT_FIELDS) {
    if (value[field] === undefined) throw new InputProblem(`${field} is missing`);
    values[field] = value[field];
  }
  // The fields are checked before anything stringifies them: a value nested thousands deep would overflow it.
  const header = { version, storedAt, lastUpdated, ttlSeconds };
  const texts = textsOf(line, values, history as unknown[], header, tenantId, { userId, sessionId }, value);
  const checked = checkContext({ values, texts: texts.fields }, limits, SAME_NAMES);
  const { document, change } = documentOf(header, checked);
  return {
    tenantId,
    userId,
    sessionId,
    version,
    lastUpdated,
    // Neither given (a hand-made file): the expiry the document itself implies.
    expiresAt: expiresAt ?? (remaining === undefined ? lastUpdated + ttlSeconds * 1000 : 0),
    remainingTtlMs: remaining ?? 0,
    document,
    change,
    history: texts.history,
  };
}

/** The canonical texts of the four fields and the log entries: from the parsed line when it is canonical already. */
function textsOf(
  line: string,
  values: Record<ContextField, unknown>,
  history: readonly unknown[],
  header: { version: number; storedAt: number; lastUpdated: number; ttlSeconds: number },
  tenantId: string,
  ref: SessionRef,
  value: Record<string, unknown>,
): { fields: Record<ContextField, string>; history: string[] } {
  const fields = {} as Record<ContextField, string>;
  for (const field of CONTEXT_FIELDS) fields[field] = stringify(values[field], field);
  const entries = history.map((entry, i) => stringify(entry, `history.${i}`));
  const body =
    `"version":${header.version},"storedAt":${header.storedAt},"lastUpdated":${header.lastUpdated},` +
    `"ttlSeconds":${header.ttlSeconds},` +
    CONTEXT_FIELDS.map((field) => `${JSON.stringify(field)}:${fields[field]}`).join(",");
  const same =
    typeof value.expiresAt === "number" &&
    typeof value.remainingTtlMs === "number" &&
    lineOf(tenantId, ref, body, value.expiresAt, value.remainingTtlMs, entries) === line;
  if (same) return { fields, history: entries };

  // Not as this tool writes it: rewrite the parts from the text itself, keeping key order.
  let members: JsonChild[];
  try {
    members = canonicalJson(line, { children: true }).children;
  } catch (error) {
    if (error instanceof JsonTextError) throw new InputProblem(error.message);
    throw error;
  }
  const text = (name: string) => members.find((member) => member.key === name)?.text;
  for (const field of CONTEXT_FIELDS) fields[field] = text(field)!;
  const historyText = text("history");
  return {
    fields,
    history:
      historyText === undefined ? [] : canonicalJson(historyText, { children: true }).children.map((e) => e.text),
  };
}

function stringify(value: unknown, field: string): string {
  try {
    return JSON.stringify(value);
  } catch {
    throw new InputProblem(`${field} is nested too deep to write`);
  }
}

function wholeNumber(value: unknown, field: string, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min)
    throw new InputProblem(`${field} is not a whole number of at least ${min}`);
  return value;
}

const OPERATIONS = new Set(["STORE", "MERGE", "RESTORE"]);

/** An entry of the change log as history-entry.ts lays it out, `i` below the session's version. */
function checkEntry(entry: unknown, i: number, version: number): void {
  const where = `history.${i}`;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry))
    throw new InputProblem(`${where} is not a JSON object`);
  const e = entry as Record<string, unknown>;
  if (e.version !== version - i)
    throw new InputProblem(`${where} has version ${String(e.version)}, expected ${version - i} (the log runs down)`);
  wholeNumber(e.at, `${where}.at`, 0);
  wholeNumber(e.ttlSeconds, `${where}.ttlSeconds`, 1);
  if (typeof e.operation !== "string" || !OPERATIONS.has(e.operation))
    throw new InputProblem(`${where}.operation is not STORE, MERGE or RESTORE`);
  if (typeof e.actor !== "string") throw new InputProblem(`${where}.actor is not a string`);
  if (!Array.isArray(e.roles) || !e.roles.every((role) => typeof role === "string"))
    throw new InputProblem(`${where}.roles is not a list of strings`);
  for (const part of ["change", "undo"]) {
    const value = e[part];
    // A store's entry may leave its change out: it is the context the store left (history-entry.ts).
    if (part === "change" && value === undefined && e.operation === "STORE") continue;
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputProblem(`${where}.${part} is not a JSON object`);
  }
  if (depthOver(entry, MAX_ENTRY_DEPTH)) throw new InputProblem(`${where} is nested more than ${MAX_ENTRY_DEPTH} deep`);
}

/** Whether `value` nests objects and arrays more than `max` levels (walked with its own stack). */
function depthOver(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [next, depth] = pending.pop()!;
    if (typeof next !== "object" || next === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(next) ? next : Object.values(next)) pending.push([child, depth + 1]);
  }
  return false;
}
