import {
  decodeDocument,
  encodeDocument,
  encodeDocumentText,
  toRecord,
  type SessionDocument,
} from "../../src/store/session-document";
import { readDocument } from "../../src/store/stored-session-record";
import type { ContextFields } from "../../src/sessions/session-record";

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
  it("writes the header and the four fields in order, each field's entry index, then the fields' UTF-8 byte lengths, the lists' counts and the index's length", () => {
    const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");
    const index = (object: object) => Object.entries(object).flatMap(([key, value]) => [bytes(key), bytes(value)]);
    // A list's: each entry's byte length in 8 digits, no separator.
    const lengths = (list: unknown[]) => list.map((entry) => String(bytes(entry)).padStart(8, "0")).join("");
    const entries = [
      index(doc.conversationState).join(","),
      index(doc.userPreferences).join(","),
      lengths(doc.interruptedQueries),
      lengths(doc.recentInteractions),
    ].join(";");

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

describe("encodeDocumentText: the same document from the fields' texts, the entry indexes found by scanning them", () => {
  it("writes what encodeDocument writes, the lists' index included", () => {
    const texts = {
      conversationState: JSON.stringify(doc.conversationState),
      interruptedQueries: JSON.stringify(doc.interruptedQueries),
      interruptedCount: doc.interruptedQueries.length,
      recentInteractions: JSON.stringify(doc.recentInteractions),
      recentCount: doc.recentInteractions.length,
      userPreferences: JSON.stringify(doc.userPreferences),
    };

    expect(encodeDocumentText(doc, texts)).toBe(encodeDocument(doc));
    expect(encodeDocumentText(doc, { ...texts, interruptedQueries: "[]", interruptedCount: 0 })).toBe(
      encodeDocument({ ...doc, interruptedQueries: [] }),
    );
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

describe("readDocument: a record over the stored document's slices", () => {
  const text = encodeDocument(doc);
  const sliceOf = (value: unknown) => JSON.stringify(value);

  it("equals the eagerly decoded record, field by field, from a string or from bytes", () => {
    const expected = toRecord("t1", ref, decodeDocument(text));
    for (const source of [text, Buffer.from(text)]) {
      const record = readDocument("t1", ref, source);
      expect(contextOf(record)).toEqual(contextOf(expected));
      expect({ ...record, stored: undefined, interruptedText: undefined }).toEqual(
        Object.fromEntries(Object.entries(expected).filter(([key]) => !(key in contextOf(expected)))),
      );
    }
  });

  it("keeps each context field's stored text, byte for byte, to copy into answers", () => {
    const record = readDocument("t1", ref, Buffer.from(text));

    expect(record.stored?.conversationState.text.toString()).toBe(sliceOf(doc.conversationState));
    expect(record.stored?.recentInteractions.text.toString()).toBe(sliceOf(doc.recentInteractions));
    expect(record.stored?.userPreferences.text.toString()).toBe(sliceOf(doc.userPreferences));
  });

  it("reads the header without parsing the context, and parses a field on its first read", () => {
    // A valid layout around a conversationState that is not JSON: only reading that field can notice.
    const state = sliceOf(doc.conversationState);
    const broken = text.replace(state, `{${"x".repeat(Buffer.byteLength(state) - 2)}}`);

    const record = readDocument("t1", ref, broken);

    expect(record.version).toBe(3);
    expect(record.expiresAt.getTime()).toBe(doc.lastUpdated + doc.ttlSeconds * 1000);
    expect(record.userPreferences).toEqual(doc.userPreferences);
    expect(() => record.conversationState).toThrow(SyntaxError);
  });

  it("parses whole, as before, a document without the trailer or whose spans do not fit its text", () => {
    const withoutTrailer = JSON.stringify(doc);
    // The trailer's spans, not userPreferences' own "spans" member.
    const wrongSpans = text.replace(
      /"spans":\[(\d+),(?=[\d,]*\]\}$)/,
      (_m, cs: string) => `"spans":[${Number(cs) + 1},`,
    );
    const fiveSpans = text.replace(/,"entries":"[^"]*"/, "").replace(/,\d+\]\}$/, "]}");

    for (const source of [withoutTrailer, wrongSpans, fiveSpans]) {
      const record = readDocument("t1", ref, source);
      expect(contextOf(record)).toEqual(contextOf(doc));
    }
    expect(readDocument("t1", ref, withoutTrailer).stored).toBeUndefined();
    expect(readDocument("t1", ref, wrongSpans).stored).toBeUndefined();
    expect(readDocument("t1", ref, fiveSpans).stored).toBeDefined(); // a trailer without the entry index still fits
  });
});

function contextOf(fields: ContextFields): ContextFields {
  const { conversationState, interruptedQueries, recentInteractions, userPreferences } = fields;
  return { conversationState, interruptedQueries, recentInteractions, userPreferences };
}
