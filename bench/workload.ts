/**
 * What `npm run bench` stores and asks: realistic session contexts (about 1.6 KB of JSON each, deterministic for a
 * given seed) and the GraphQL documents of each scenario.
 */
import type { ContextFields, JsonObject } from "../src/sessions/session-record";

/** Small deterministic PRNG (mulberry32): the same seed gives the same data set on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOPICS = ["billing", "travel", "support", "onboarding", "returns", "insurance", "banking", "hr"];
const INTENTS = ["check_balance", "book_flight", "reset_password", "track_order", "file_claim", "update_address"];
const PHRASES = [
  "Can you show me the charges from last month on my business account?",
  "I need to move my flight to the Thursday morning departure if there is one.",
  "What happens to my open claim if I change my address before it is settled?",
  "Please summarise the three options you gave me earlier and compare the fees.",
  "The tracking number you gave me does not work on the carrier's site.",
  "Remind me which documents I still have to upload for the mortgage application.",
  "Is the premium plan billed per seat or per workspace, and can I switch mid-cycle?",
  "Translate the last answer into Spanish and keep the table formatting please.",
];
const LANGS = ["en-GB", "en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"];
const ZONES = ["Europe/London", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Sao_Paulo"];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

/** One interaction as a client would append it. */
export function interaction(rand: () => number, at: number): JsonObject {
  return {
    at: new Date(at).toISOString(),
    role: rand() < 0.5 ? "user" : "assistant",
    text: pick(rand, PHRASES),
    intent: pick(rand, INTENTS),
    confidence: Math.round(rand() * 1000) / 1000,
  };
}

/** A full context of about 1.6 KB of JSON: nested state, a few interrupted queries, 5 interactions, preferences. */
export function realisticContext(rand: () => number, now = Date.UTC(2025, 0, 15, 9, 30)): ContextFields {
  const topic = pick(rand, TOPICS);
  const recentInteractions = Array.from({ length: 5 }, (_, i) => interaction(rand, now - (5 - i) * 45_000));
  return {
    conversationState: {
      topic,
      intent: pick(rand, INTENTS),
      step: Math.floor(rand() * 12),
      slots: {
        account: { id: `acct-${Math.floor(rand() * 1e8)}`, type: rand() < 0.5 ? "business" : "personal" },
        amount: Math.round(rand() * 1e6) / 100,
        currency: "EUR",
      },
      pendingAction: { kind: "confirm", prompt: "Shall I go ahead with the change?", expiresInS: 300 },
      summary: `A ${topic} request; two options offered, one pending.`,
      flags: { escalated: false, authenticatedStepUp: rand() < 0.3, channel: "web" },
    },
    interruptedQueries: [pick(rand, PHRASES), pick(rand, PHRASES)],
    recentInteractions,
    userPreferences: {
      language: pick(rand, LANGS),
      timezone: pick(rand, ZONES),
      tone: rand() < 0.5 ? "concise" : "detailed",
      units: "metric",
      notifications: { email: true, push: rand() < 0.5, digest: "weekly" },
    },
  };
}

/**
 * An interaction of a long-running assistant session: two or three sentences, the model's citations and token
 * counts (about 330 B of JSON, against `interaction`'s ~180 B).
 */
function longInteraction(rand: () => number, at: number): JsonObject {
  const sentences = 2 + Math.floor(rand() * 2);
  return {
    ...interaction(rand, at),
    text: Array.from({ length: sentences }, () => pick(rand, PHRASES)).join(" "),
    citations: [`doc-${Math.floor(rand() * 1e6)}`, `doc-${Math.floor(rand() * 1e6)}`],
    tokens: { prompt: Math.floor(rand() * 4000), completion: Math.floor(rand() * 800) },
  };
}

/** Interactions in a large context: the default cap (maxRecentInteractions 100), so a merge's append trims one. */
export const LARGE_INTERACTIONS = 100;

/**
 * A context of about 64 KB of JSON, as a long assistant session accumulates: the state of `realisticContext` plus
 * retrieved passages (~24 KB) and a tool's result table (~8 KB), 100 interactions at the default list cap (~33 KB),
 * six interrupted queries and the preferences. Within the default limits: MAX_CONTEXT_BYTES 256 KB, list caps 100,
 * a few top-level keys per object.
 */
export function largeContext(rand: () => number, now = Date.UTC(2025, 0, 15, 9, 30)): ContextFields {
  const base = realisticContext(rand, now);
  const passage = () => Array.from({ length: 6 }, () => pick(rand, PHRASES)).join(" ");
  return {
    ...base,
    conversationState: {
      ...base.conversationState,
      retrieved: Array.from({ length: 36 }, (_, i) => ({
        id: `doc-${Math.floor(rand() * 1e6)}`,
        title: `${pick(rand, TOPICS)} policy, section ${i + 1}`,
        score: Math.round(rand() * 1000) / 1000,
        text: passage(),
      })),
      orderLines: Array.from({ length: 60 }, (_, i) => ({
        line: i + 1,
        sku: `SKU-${Math.floor(rand() * 1e6)}`,
        description: `${pick(rand, TOPICS)} item ${i + 1}`,
        quantity: 1 + Math.floor(rand() * 9),
        unitPrice: Math.round(rand() * 1e5) / 100,
        status: rand() < 0.8 ? "shipped" : "pending",
      })),
    },
    interruptedQueries: Array.from({ length: 6 }, () => pick(rand, PHRASES)),
    recentInteractions: Array.from({ length: LARGE_INTERACTIONS }, (_, i) =>
      longInteraction(rand, now - (LARGE_INTERACTIONS - i) * 45_000),
    ),
  };
}

/** The fields a client reads of a session: all of them. */
export const SESSION_FIELDS = `id tenantId userId sessionId conversationState interruptedQueries recentInteractions
  userPreferences storedAt lastUpdated expiresAt ttlSeconds version`.replace(/\s+/g, " ");

/** The fields a client reads back after a write. */
export const WRITE_FIELDS = "id version lastUpdated expiresAt ttlSeconds";

export const READ_ONE = `query ReadOne($sessionId: ID!) { sessionContext(sessionId: $sessionId) { ${SESSION_FIELDS} } }`;

/** 20 sessions of one user by aliases, in one request: the loader sends one MGET. */
export const READ_MANY = (count: number): string => {
  const vars = Array.from({ length: count }, (_, i) => `$s${i}: ID!`).join(", ");
  const fields = Array.from(
    { length: count },
    (_, i) => `s${i}: sessionContext(sessionId: $s${i}) { ${SESSION_FIELDS} }`,
  ).join(" ");
  return `query ReadMany(${vars}) { ${fields} }`;
};

export const STORE = `mutation Store($input: SessionContextInput!) { storeSessionContext(input: $input) { ${WRITE_FIELDS} } }`;

export const MERGE = `mutation Merge($input: SessionContextInput!) { mergeSessionContext(input: $input) { ${WRITE_FIELDS} } }`;

export const USER_SESSIONS = `query Page($first: Int!) { userSessions(first: $first) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${SESSION_FIELDS} } } } }`.replace(/\s+/g, " ");
