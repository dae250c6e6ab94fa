import { decodeDocument, encodeDocument, toRecord, type SessionDocument } from "../../src/store/session-document";

/** The stored layout both stores share (session-document.ts); write-session-6.lua writes the same text. */

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

describe("encodeDocument: JSON.stringify's text of the document, then the spans trailer", () => {
  it("writes the header and the four fields in order, then their UTF-8 byte lengths and the lists' counts", () => {
    const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");

    const text = encodeDocument(doc);

    expect(text).toBe(
      JSON.stringify({
        ...doc,
        spans: [bytes(doc.conversationState), bytes(doc.interruptedQueries), 3, bytes(doc.recentInteractions), 2],
      }),
    );
    expect(text).toMatch(/,"spans":\[\d+,\d+,3,\d+,2\]\}$/);
  });
});

describe("Readers ignore the trailer", () => {
  it("toRecord returns the header and the four fields, never spans", () => {
    const record = toRecord("t", { userId: "u", sessionId: "s" }, decodeDocument(encodeDocument(doc)));

    expect(record).not.toHaveProperty("spans");
    expect(record).toMatchObject({
      version: 3,
      conversationState: doc.conversationState,
      interruptedQueries: doc.interruptedQueries,
      recentInteractions: doc.recentInteractions,
      userPreferences: doc.userPreferences,
    });
  });
});
