import { escapeId, sessionKey, tenantPrefix } from "../../src/store/keys";

/** Reverses escapeId: if every escaped id decodes back to itself, no two ids can share an escaped form. */
const unescape = (escaped: string) =>
  escaped.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

/** The Redis Cluster hash tag of a key: what lies between its first "{" and the next "}", when non-empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf("{");
  const close = key.indexOf("}", open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** Deterministic ids built from the characters most likely to collide, so failures reproduce. */
function trickyIds(count: number): string[] {
  const pieces = ["a", "b", "%", "%3A", "%25", ":", "{", "}", "*", "?", "[", "]", "\\", "user", "session", "é", "😀"];
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + (next() % 5) }, () => pieces[next() % pieces.length]).join(""),
  );
}

const GLOB_OR_SEPARATOR = /[:{}*?[\]\\]/;

describe("escapeId: ids of letters, digits, -, _, . and @ appear verbatim", () => {
  it.each(["tenant-1", "ACME_Corp", "jane.doe@example.com", "0123456789", "a-b_c.d@e"])("%s", (id) => {
    expect(escapeId(id)).toBe(id);
  });
});

describe("escapeId: characters with meaning in keys or SCAN patterns are escaped as %XX", () => {
  it.each([
    [":", "%3A"],
    ["{", "%7B"],
    ["}", "%7D"],
    ["*", "%2A"],
    ["?", "%3F"],
    ["[", "%5B"],
    ["]", "%5D"],
    ["\\", "%5C"],
    ["%", "%25"],
  ])("%s becomes %s", (character, escaped) => {
    expect(escapeId(`a${character}b`)).toBe(`a${escaped}b`);
  });

  it("leaves every other character, unicode and spaces included, as it is", () => {
    const id = "日本語 😀 مرحبا +=,;!~'\"";

    expect(escapeId(id)).toBe(id);
  });

  it("never leaves a separator or glob character in its output", () => {
    const escaped = trickyIds(2000).map(escapeId);

    for (const id of escaped) expect(id).not.toMatch(GLOB_OR_SEPARATOR);
  });
});

describe("escapeId is one-to-one", () => {
  it("decodes back to the original id, so different ids never share an escaped form", () => {
    const ids = [...new Set(trickyIds(5000))];

    const escaped = ids.map(escapeId);

    expect(escaped.map(unescape)).toEqual(ids);
    expect(new Set(escaped).size).toBe(ids.length);
  });

  it("keeps an id apart from the escaped spelling of another", () => {
    expect(escapeId("x%2A")).not.toBe(escapeId("x*"));
    expect(escapeId("%3A")).not.toBe(escapeId(":"));
  });
});

describe("sessionKey: tenant:{<tenant>}:user:<user>:session:<session>", () => {
  it("puts verbatim ids straight into the layout", () => {
    expect(sessionKey("acme", "jane.doe@example.com", "chat-1")).toBe(
      "tenant:{acme}:user:jane.doe@example.com:session:chat-1",
    );
  });

  it("escapes the ids, so ids that would collide when joined naively get different keys", () => {
    expect(sessionKey("a:b", "c", "s")).toBe("tenant:{a%3Ab}:user:c:session:s");
    expect(sessionKey("a", "b:c", "s")).toBe("tenant:{a}:user:b%3Ac:session:s");
    expect(sessionKey("t", "u:session:s", "x")).not.toBe(sessionKey("t", "u", "s:session:x"));
  });

  it("gives every different (tenant, user, session) its own key", () => {
    const ids = [...new Set(trickyIds(40))];
    const triples = ids.flatMap((t) => ids.flatMap((u) => ids.slice(0, 10).map((s) => [t, u, s] as const)));

    const keys = new Set(triples.map(([t, u, s]) => sessionKey(t, u, s)));

    expect(keys.size).toBe(triples.length);
  });

  it("has the escaped tenant as its Cluster hash tag, whatever braces the ids contain", () => {
    for (const [tenant, user] of [
      ["{a}", "b"],
      ["a}", "{b}"],
      ["t", "}{"],
    ]) {
      expect(hashTag(sessionKey(tenant, user, "{s}"))).toBe(escapeId(tenant));
    }
  });
});

describe("tenantPrefix: every key of a tenant starts with it, and no other tenant's key does", () => {
  it("is a literal SCAN prefix: no glob characters", () => {
    for (const tenant of trickyIds(500)) expect(tenantPrefix(tenant)).not.toMatch(/[*?[\]\\]/);
  });

  it("prefixes the tenant's own session keys only", () => {
    const tenants = [...new Set(["a", "a}", "ab", "a*", "a%", "a%25", ...trickyIds(150)])];

    for (const owner of tenants) {
      const prefix = tenantPrefix(owner);
      for (const other of tenants) {
        expect(sessionKey(other, "u", "s").startsWith(prefix)).toBe(other === owner);
      }
    }
  });
});
