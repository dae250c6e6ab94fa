import { writeJsonAnswer, writeJsonAnswerChunks, writeJsonAnswerText } from "../../src/execution/json-answer";
import { entriesOf, JsonText } from "../../src/execution/json-text";

/** Values JSON.stringify treats in each of its ways: what writeJsonAnswer must write the same. */
const answers: [string, unknown][] = [
  [
    "scalars",
    { data: { s: 'a "q" \\ \n \u2028 \ud800 é 👩🏽‍💻', n: 0.1 + 0.2, z: -0, i: 42, t: true, f: false, u: null } },
  ],
  ["non-finite numbers and what is left out", { data: { nan: NaN, inf: -Infinity, gone: undefined, fn: () => 1 } }],
  ["lists with holes of every kind", { data: { l: [1, undefined, () => 1, Symbol("s"), null, [], {}] } }],
  ["dates and toJSON", { data: { at: new Date(Date.UTC(2026, 11, 2, 12)), custom: { toJSON: () => ["x"] } } }],
  [
    "dates JSON.stringify writes as null, or with six-digit years",
    { data: { bad: new Date(NaN), far: new Date(8.64e15), l: [new Date(-1)] } },
  ],
  [
    "errors first, then data and extensions",
    { errors: [{ message: "m", path: ["a", 0] }], data: null, extensions: { code: "X" } },
  ],
  [
    "a null-prototype object (graphql-js builds its results so)",
    { data: Object.assign(Object.create(null), { a: { "1": 1, b: 2 } }) },
  ],
  ["keys that need escaping", { data: { 'we"ird\\key\n': 1, "": 2 } }],
];

describe("writeJsonAnswer writes what JSON.stringify would, then a newline", () => {
  it.each(answers)("%s", (_name, value) => {
    expect(writeJsonAnswer(value)).toBe(`${JSON.stringify(value)}\n`);
  });

  it("throws on a BigInt, as JSON.stringify does", () => {
    expect(() => writeJsonAnswer({ data: { n: 1n } })).toThrow(TypeError);
  });
});

describe("A JsonText is written as the text it holds", () => {
  const stored = '{"ключ 🔑":"👩🏽‍💻","lone":"\\ud800","1":[],"big":15947634569000323}';

  it("as a string when every JsonText holds a string", () => {
    const answer = writeJsonAnswer({ data: { a: new JsonText(stored), b: "x" } });
    expect(answer).toBe(`{"data":{"a":${stored},"b":"x"}}\n`);
  });

  it("as bytes, copied unchanged, when a JsonText holds 8 KB of bytes or more; shorter bytes are decoded into text", () => {
    const large = `{"big":${JSON.stringify("é".repeat(8 * 1024))},"rest":${stored}}`;
    for (const [text, asBytes] of [
      [stored, false],
      [large, true],
    ] as const) {
      const bytes = Buffer.from(text, "utf8");
      const answer = writeJsonAnswer({ data: { a: new JsonText(bytes), b: "é", c: new JsonText(bytes) } });
      expect(Buffer.isBuffer(answer)).toBe(asBytes);
      expect(answer.toString()).toBe(`{"data":{"a":${text},"b":"é","c":${text}}}\n`);
    }
  });

  it("in pieces, for a writer that sends them in turn: the stored bytes themselves, not a copy", () => {
    const large = Buffer.from(`{"big":${JSON.stringify("é".repeat(8 * 1024))}}`, "utf8");
    const value = { data: { a: new JsonText(large), b: "é", c: new JsonText(large) } };
    const answer = writeJsonAnswerChunks(value);
    if (typeof answer === "string") throw new Error("8 KB of stored bytes must come back in pieces");
    expect(answer.chunks.filter((chunk) => chunk === large)).toHaveLength(2);
    const whole = Buffer.concat(answer.chunks.map((chunk) => (typeof chunk === "string" ? Buffer.from(chunk) : chunk)));
    expect(answer.byteLength).toBe(whole.length);
    expect(whole.equals(writeJsonAnswer(value) as Buffer)).toBe(true);
    expect(writeJsonAnswerChunks({ data: { a: new JsonText(Buffer.from("[1]")) } })).toBe('{"data":{"a":[1]}}\n');
  });

  it("a list's entries as one fragment: [entriesOf(list)] writes the list", () => {
    for (const list of ['[{"a":1},{"b":[{"c":2}]}]', "[]", '[{"é":"]"}]']) {
      for (const text of [list, Buffer.from(list)]) {
        const answer = writeJsonAnswerText({ data: { l: [entriesOf(new JsonText(text))] } });
        expect(answer).toBe(`{"data":{"l":${list}}}\n`);
      }
    }
  });

  it("any other serializer gets the value a whole JsonText holds (toJSON)", () => {
    expect(JSON.stringify({ a: new JsonText(Buffer.from('{"b":[1,{}]}')) })).toBe('{"a":{"b":[1,{}]}}');
  });
});
