import {
  decodeDocument,
  encodeDocument,
  toRecord,
  toRecordParsingContextLazily,
  type SessionDocument,
} from "../../src/store/session-document";

/** The stored layout both stores share (session-document.ts); write-session-7.lua writes the same text. */

const doc: SessionDocument = {
  version: 3,
  storedAt: 1_700_000_000_000,
  lastUpdated: 1_700_000_100_000,
  ttlSeconds: 86_400,
  conversationState: { "ключ 🔑": "👩🏽‍💻", lone: "\ud800", q: 'a "b" \\ ]}', n: 0.30000000000000004, e: {} },
  interruptedQueries: ["é", "", "\u2028"],
  recentInteractions: [{ a: [] }, {}],
  userPreferences: { spans: [1, 2, 3, 4, 5] },
};

describe("encodeDocument: JSON.stringify's text of the document, then the entry index and the spans trailer", () => {
  it("writes the header and the four fields in order, each object's entry index, then the fields' UTF-8 byte lengths, the lists' counts and the index's length", () => {
    const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");
    const index = (object: object) => Object.entries(object).flatMap(([key, value]) => [bytes(key), bytes(value)]);
    const entries = `${index(doc.conversationState).join(",")};${index(doc.userPreferences).join(",")}`;

    const text = encodeDocument(doc);

    expect(text).toBe(
      JSON.stringify({
        ...doc,
        entries,
        spans: [
          bytes(doc.conversationState),
          bytes(doc.interruptedQueries),
          3,
          bytes(doc.recentInteractions),
          2,
          entries.length,
        ],
      }),
    );
    expect(text).toMatch(/,"spans":\[\d+,\d+,3,\d+,2,\d+\]\}$/);
  });
});

describe("Readers ignore the trailer", () => {
  it("toRecord returns the header and the four fields, never spans", () => {
    const record = toRecord("t", { userId: "u", sessionId: "s" }, decodeDocument(encodeDocument(doc)));

    expect(record).not.toHaveProperty("spans");
    expect(record).not.toHaveProperty("entries");
    expect(record).toMatchObject({
      version: 3,
      conversationState: doc.conversationState,
      interruptedQueries: doc.interruptedQueries,
      recentInteractions: doc.recentInteractions,
      userPreferences: doc.userPreferences,
    });
  });
});

const ref = { userId: "alice", sessionId: "s1" };
const written: SessionDocument = {
  version: 7,
  storedAt: Date.UTC(2026, 0, 1),
  lastUpdated: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
  ttlSeconds: 3600,
  conversationState: { step: 3, total: 0.1 + 0.2, nested: { empty: [], none: {} } },
  interruptedQueries: ["where was I?"],
  recentInteractions: [{ at: "2026-01-02T03:04:05.678Z", text: "héllo 👋" }],
  userPreferences: { language: "de-DE" },
};

describe("toRecordParsingContextLazily: the record of a written document", () => {
  it("equals the eagerly decoded record, field by field", () => {
    const text = encodeDocument(written);

    expect(toRecordParsingContextLazily("t1", ref, text)).toEqual(toRecord("t1", ref, decodeDocument(text)));
  });

  it("reads the header without parsing the context, and parses it on the first context field read", () => {
    // A valid header in front of a context that is not JSON: only reading a context field can notice.
    const text = `${encodeDocument(written).split('"conversationState":')[0]}"conversationState":{not json`;

    const record = toRecordParsingContextLazily("t1", ref, text);

    expect(record.version).toBe(7);
    expect(record.lastUpdated.toISOString()).toBe("2026-01-02T03:04:05.678Z");
    expect(record.expiresAt.getTime()).toBe(written.lastUpdated + 3600 * 1000);
    expect(() => record.conversationState).toThrow(SyntaxError);
  });

  it("parses a document of another layout eagerly, as reads do", () => {
    const text = JSON.stringify({ ...written, version: undefined, extra: 1, v: written.version });

    expect(() => toRecordParsingContextLazily("t1", ref, text)).not.toThrow();
    expect(toRecordParsingContextLazily("t1", ref, text).conversationState).toEqual(written.conversationState);
  });
});
