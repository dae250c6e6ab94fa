import { canonicalJson } from "../../src/data/json-text";
import { legacyKeySplits, timeOf } from "../../src/data/legacy-session";

describe("canonical JSON text", () => {
  it("is JSON.stringify's text, with the source's key order kept", () => {
    const source = '{ "z" : 1, "1": [ true, null, {} ], "s": "caf\\u00e9 \\ud83d\\ude00 \\/", "n": -0, "e": 1E2 }';

    const { text, type, roundedNumbers } = canonicalJson(source);

    expect(text).toBe('{"z":1,"1":[true,null,{}],"s":"café 😀 /","n":0,"e":100}');
    expect([type, roundedNumbers]).toEqual(["object", 0]);
  });

  it("keeps a double's 17 digits and counts integers a double cannot hold", () => {
    expect(canonicalJson("[0.30000000000000004,9007199254740993,12345678901234567,1e300]")).toMatchObject({
      text: "[0.30000000000000004,9007199254740992,12345678901234568,1e+300]",
      roundedNumbers: 2,
    });
  });

  it("gives the members of the top-level value when asked", () => {
    expect(canonicalJson('{"a": [1, 2], "b": {"c": "d"}}', { children: true }).children).toEqual([
      { key: "a", text: "[1,2]", type: "array" },
      { key: "b", text: '{"c":"d"}', type: "object" },
    ]);
  });

  it.each([
    ["{", "expected a string key"],
    ["[1", "expected ',' or ']'"],
    ['{"a":1,}', "expected a string key"],
    ['{"a":1,"a":2}', 'duplicate key "a"'],
    ["[NaN]", "unexpected"],
    ["[1e400]", "outside the range of a double"],
    ['"\u0001"', "bad string"],
    ["[1] 2", "unexpected text after the value"],
  ])("refuses %s", (source, message) => {
    expect(() => canonicalJson(source)).toThrow(message);
  });

  it("walks any depth without recursion", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    expect(canonicalJson(deep).text).toBe(deep);
  });
});

describe("legacy keys and times", () => {
  it("splits a key every way its ids allow", () => {
    expect(legacyKeySplits("tenant:a:b:user:{u}:session:s:1")).toEqual([
      { tenantId: "a:b", userId: "{u}", sessionId: "s:1" },
    ]);
    expect(legacyKeySplits("tenant:t:user:a:user:b:session:c")).toHaveLength(2);
    expect(legacyKeySplits("tenant::user:u:session:s")).toEqual([]);
    expect(legacyKeySplits("other:key")).toEqual([]);
  });

  it("reads ISO-8601 (no offset: UTC) and epoch seconds", () => {
    expect(timeOf('"2026-11-30T10:20:30.123456"', "t")).toBe(Date.UTC(2026, 10, 30, 10, 20, 30, 123));
    expect(timeOf('"2026-11-30 12:20:30+02:00"', "t")).toBe(Date.UTC(2026, 10, 30, 10, 20, 30));
    expect(timeOf("1796000000.25", "t")).toBe(1796000000250);
    expect(timeOf('"1796000000"', "t")).toBe(1796000000000);
    expect(() => timeOf('"yesterday"', "t")).toThrow("neither ISO-8601 nor epoch seconds");
  });
});
