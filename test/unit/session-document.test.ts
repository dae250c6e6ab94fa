import {
  decodeDocument,
  encodeDocument,
  toRecord,
  toRecordParsingContextLazily,
  type SessionDocument,
} from "../../src/store/session-document";

const ref = { userId: "alice", sessionId: "s1" };
const doc: SessionDocument = {
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
    const text = encodeDocument(doc);

    expect(toRecordParsingContextLazily("t1", ref, text)).toEqual(toRecord("t1", ref, decodeDocument(text)));
  });

  it("reads the header without parsing the context, and parses it on the first context field read", () => {
    // A valid header in front of a context that is not JSON: only reading a context field can notice.
    const text = `${encodeDocument(doc).split('"conversationState":')[0]}"conversationState":{not json`;

    const record = toRecordParsingContextLazily("t1", ref, text);

    expect(record.version).toBe(7);
    expect(record.lastUpdated.toISOString()).toBe("2026-01-02T03:04:05.678Z");
    expect(record.expiresAt.getTime()).toBe(doc.lastUpdated + 3600 * 1000);
    expect(() => record.conversationState).toThrow(SyntaxError);
  });

  it("parses a document of another layout eagerly, as reads do", () => {
    const text = JSON.stringify({ ...doc, version: undefined, extra: 1, v: doc.version });

    expect(() => toRecordParsingContextLazily("t1", ref, text)).not.toThrow();
    expect(toRecordParsingContextLazily("t1", ref, text).conversationState).toEqual(doc.conversationState);
  });
});
