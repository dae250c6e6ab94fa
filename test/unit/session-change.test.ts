import { writeJson } from "../../src/execution/json-answer";
import { decodeChangeMessage } from "../../src/live/session-change";
import { indexMember } from "../../src/store/keys";
import { encodeDocument, type SessionDocument } from "../../src/store/session-document";

/** The announcement write-session-7.lua and delete-sessions.lua publish, read as the bytes Redis delivers. */

const doc: SessionDocument = {
  version: 7,
  storedAt: 1_700_000_000_000,
  lastUpdated: 1_700_000_100_000,
  ttlSeconds: 3_600,
  conversationState: { step: 1, "7": "integer-like key after step", note: "ключ 🔑 \u2028" },
  interruptedQueries: ["é"],
  recentInteractions: [{ role: "user", text: "👩🏽‍💻" }],
  userPreferences: { lang: "he", name: "שלום" },
};
// As the script writes it: stored key order (not JavaScript's, which would put "7" first).
const documentText = encodeDocument(doc).replace(
  '{"7":"integer-like key after step","step":1,',
  '{"step":1,"7":"integer-like key after step",',
);
const changeText = '{"conversationState":{"step":1,"7":"integer-like key after step"}}';
const member = indexMember("ålice:1", "s%1");

describe("decodeChangeMessage: the announcement's bytes, its document and change kept as they came", () => {
  it("reads an UPDATED message: the session, operation and version, with the change and context written as stored", () => {
    const message = Buffer.from(`U\n${member}\nMERGE\n${changeText}\n${documentText}`);

    const change = decodeChangeMessage("t1", message);

    expect(change).toMatchObject({ type: "UPDATED", ref: { userId: "ålice:1", sessionId: "s%1" }, version: 7 });
    if (change?.type !== "UPDATED") throw new Error("not an update");
    expect([change.operation, change.at, change.storedAt]).toEqual(["MERGE", doc.lastUpdated, doc.storedAt]);
    expect(writeJson({ change: change.change })).toEqual(Buffer.from(`{"change":${changeText}}`).toString());
    expect(String(writeJson(change.record.stored?.conversationState))).toBe(
      '{"step":1,"7":"integer-like key after step","note":"ключ 🔑 \u2028"}',
    );
    expect(change.record.userPreferences).toEqual(doc.userPreferences);
    // Any other serializer gets the value (JsonText's toJSON).
    expect(JSON.parse(JSON.stringify({ change: change.change }))).toEqual(JSON.parse(`{"change":${changeText}}`));
  });

  it("takes a store's change, announced as null, from the document: its four fields as stored", () => {
    const message = Buffer.from(`U\n${member}\nSTORE\nnull\n${documentText}`);

    const change = decodeChangeMessage("t1", message);

    if (change?.type !== "UPDATED") throw new Error("not an update");
    expect(change.operation).toBe("STORE");
    const context = documentText.slice(documentText.indexOf('"conversationState"'), documentText.indexOf(',"entries"'));
    expect(writeJson(change.change)).toBe(`{${context}}`);
    expect(JSON.parse(JSON.stringify(change.change))).toEqual({
      conversationState: doc.conversationState,
      interruptedQueries: doc.interruptedQueries,
      recentInteractions: doc.recentInteractions,
      userPreferences: doc.userPreferences,
    });
  });

  it("reads a DELETED message: the session, its last version and when", () => {
    const change = decodeChangeMessage("t1", Buffer.from(`D\n${member}\n12\n1700000200000`));

    expect(change).toEqual({
      type: "DELETED",
      ref: { userId: "ålice:1", sessionId: "s%1" },
      version: 12,
      at: 1_700_000_200_000,
    });
  });

  it.each([
    ["another kind (a newer server's)", `X\n${member}\n1`],
    ["an update cut short", `U\n${member}\nMERGE\n${changeText}`],
    ["a deletion cut short", `D\n${member}\n12`],
    ["no kind line", "U"],
  ])("gives undefined for %s", (_case, text) => {
    expect(decodeChangeMessage("t1", Buffer.from(text))).toBeUndefined();
  });
});
