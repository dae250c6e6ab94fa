import { BadUserInputError } from "../../src/errors/errors";
import { assertValidId, idProblem, MAX_ID_BYTES } from "../../src/sessions/ids";

describe("An id is any non-empty string up to 256 UTF-8 bytes without control characters", () => {
  it.each([
    ["one character", "a"],
    ["256 ASCII bytes", "x".repeat(256)],
    ["256 bytes of two-byte characters", "é".repeat(128)],
    ["256 bytes of four-byte characters", "😀".repeat(64)],
    ["characters with meaning in keys", ": { } * ? [ ] \\ %"],
    ["spaces and punctuation", " a b +=,;!'\" "],
    ["unicode letters and RTL text", "ユーザー مرحبا"],
    ["characters just outside the control ranges", "\u0020\u007e\u0080\u00a0\u2028"],
  ])("accepts %s", (_what, id) => {
    expect(idProblem(id)).toBeUndefined();
    expect(() => assertValidId(id, "input.sessionId")).not.toThrow();
  });

  it.each([
    ["the empty string", ""],
    ["undefined", undefined],
    ["null", null],
    ["a number", 42],
    ["an object", { id: "x" }],
  ])("refuses %s as not a non-empty string", (_what, id) => {
    expect(idProblem(id)).toBe("must be a non-empty string");
  });

  it.each([
    ["257 ASCII bytes", "x".repeat(257)],
    ["129 two-byte characters (258 bytes)", "é".repeat(129)],
    ["65 four-byte characters (260 bytes)", "😀".repeat(65)],
  ])("refuses %s as over the limit, counting UTF-8 bytes", (_what, id) => {
    expect(idProblem(id)).toBe(`must be at most ${MAX_ID_BYTES} UTF-8 bytes`);
  });

  it.each([
    ["U+0000", "a\u0000b"],
    ["U+0001", "\u0001"],
    ["a tab", "a\tb"],
    ["a newline", "line\n"],
    ["U+001F", "\u001f"],
    ["U+007F", "del\u007f"],
  ])("refuses an id containing %s", (_what, id) => {
    expect(idProblem(id)).toBe("must not contain control characters");
  });
});

describe("An id must be expressible in UTF-8, so that different ids never share a key", () => {
  it.each([
    ["a lone high surrogate", "\ud800"],
    ["a lone low surrogate", "a\udfffb"],
    ["a low surrogate before a high one", "\udc00\ud800"],
  ])("refuses %s", (_what, id) => {
    expect(idProblem(id)).toBe("must be valid Unicode (an unpaired surrogate has no UTF-8 form)");
  });

  it("accepts a surrogate pair (a character outside the BMP)", () => {
    expect(idProblem("\ud83d\ude00")).toBeUndefined();
  });
});

describe("assertValidId: a bad id is BAD_USER_INPUT naming the field", () => {
  it("throws a BadUserInputError whose message and extensions name the field", () => {
    const attempt = () => assertValidId("", "input.userId");

    expect(attempt).toThrow(BadUserInputError);
    expect(attempt).toThrow(/^input\.userId: must be a non-empty string$/);
    expect(attempt).toThrow(expect.objectContaining({ extensions: { code: "BAD_USER_INPUT", field: "input.userId" } }));
  });
});
