import type { Cluster, Redis } from "ioredis";
import type { ContextFields, SessionRecord, SessionRef } from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import type { JsonObject } from "../../src/sessions/session-record";
import { historyKey, sessionKey } from "../../src/store/keys";
import { encodeDocument, type SessionDocument } from "../../src/store/session-document";
import { freshTenant } from "../helpers/test-server";
import {
  contextOf,
  empties,
  json,
  LIMITS,
  oddKeys,
  startClusterStore,
  startRedisStore,
  text,
  tricky,
  type ClusterStoreUnderTest,
  type RedisStoreUnderTest,
} from "./session-store.harness";

/**
 * The stored document's spans trailer (session-document.ts, write-session-7.lua): the write script writes exactly
 * the text encodeDocument gives, merges slice the fields at the trailer's offsets, and documents without a trailer
 * (written before it existed) or with one that does not line up are merged exactly as before, by scanning. And the
 * change log entries' layout (history-entry.ts): what the script leaves out and copies, and that entries written
 * before read alike.
 */

const ref: SessionRef = { userId: "user-1", sessionId: "session-1" };
const TRAILER = /,"spans":\[(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\]\}$/;

/** The document as the write script wrote it before the trailer: JSON.stringify of the header and the four fields. */
function oldLayout(doc: SessionDocument): string {
  const { version, storedAt, lastUpdated, ttlSeconds } = doc;
  return JSON.stringify({ version, storedAt, lastUpdated, ttlSeconds, ...contextOf(doc) });
}

const stored: SessionDocument = {
  version: 7,
  storedAt: 1_700_000_000_000,
  lastUpdated: 1_700_000_100_000,
  ttlSeconds: 3600,
  conversationState: { ...tricky, step: 1, nested: { a: [1, { b: "}]" }] } },
  interruptedQueries: ["first", text.escapes as string, "third"],
  recentInteractions: [empties, { n: 1 }, { "": "]}" }],
  // A user key named like the trailer must not be taken for it, in either layout.
  userPreferences: { ...oddKeys, spans: [1, 2, 3, 4, 5] },
};

/** The text encodeDocument gives for what a write returned: the document the write script must have written. */
function documentOf(record: SessionRecord): string {
  const { version, ttlSeconds } = record;
  return encodeDocument({
    version,
    storedAt: +record.storedAt,
    lastUpdated: +record.lastUpdated,
    ttlSeconds,
    ...contextOf(record),
  });
}

/** The same over 16 KB: the write script reads a large document's fields in parts, its lists only where it needs them. */
const padded: SessionDocument = {
  ...stored,
  conversationState: { ...stored.conversationState, padding: "p".repeat(17_000) },
};

type Sut = RedisStoreUnderTest | ClusterStoreUnderTest;
const admin = (sut: Sut): Redis | Cluster => ("redis" in sut ? sut.redis.admin : sut.cluster.admin);

describe.each([
  ["RedisSessionStore", startRedisStore],
  ["RedisSessionStore on a Redis Cluster", startClusterStore],
] as const)("%s", (_name, start) => {
  let sut: Sut;
  beforeAll(async () => {
    sut = await start();
  });
  afterAll(() => sut.close());

  const raw = async (tenant: string) => (await admin(sut).get(sessionKey(tenant, ref.userId, ref.sessionId)))!;
  const put = (tenant: string, document: string) =>
    admin(sut).set(sessionKey(tenant, ref.userId, ref.sessionId), document, "EX", stored.ttlSeconds);
  /** The newest change log entry's undo, as its text (the script copies what a write replaced or dropped as stored). */
  const lastUndo = async (tenant: string) =>
    JSON.stringify(
      json<{ undo: unknown }>((await admin(sut).lindex(historyKey(tenant, ref.userId, ref.sessionId), 0))!).undo,
    );

  /** Merges `patch` into the stored session (through `on`) and checks the whole new document, byte for byte. */
  async function expectMerge(
    tenant: string,
    patch: Partial<ContextFields>,
    expected: ContextFields,
    on: SessionStore = sut.store,
  ) {
    const record = await on.merge(tenant, ref, patch, LIMITS);
    expect(contextOf(record)).toEqual(expected);
    expect(Object.keys(record)).not.toContain("spans");
    const document = await raw(tenant);
    expect(document).toBe(
      encodeDocument({
        version: record.version,
        storedAt: stored.storedAt,
        lastUpdated: record.lastUpdated.getTime(),
        ttlSeconds: stored.ttlSeconds,
        ...expected,
      }),
    );
    return document;
  }

  describe("Every write ends the document in a spans trailer: the text encodeDocument gives", () => {
    it("after a store, merges of every field, list caps and a lowered cap", async () => {
      const tenant = freshTenant();
      const capped = sut.withDefaults({ maxInterruptedQueries: 4, maxRecentInteractions: 3 });
      const lowered = sut.withDefaults({ maxInterruptedQueries: 4, maxRecentInteractions: 1 });
      const steps: [mode: "store" | "merge", patch: Partial<ContextFields>, on: SessionStore][] = [
        ["store", contextOf(stored), capped],
        ["merge", { interruptedQueries: ["4th", "5th"], conversationState: { step: 2 } }, capped],
        ["merge", { recentInteractions: [{ at: "now" }] }, capped],
        ["merge", { userPreferences: { theme: "dark" } }, capped],
        ["merge", {}, capped],
        ["merge", { recentInteractions: [] }, lowered],
        ["merge", { interruptedQueries: ["a", "b", "c", "d", "e", "f"] }, capped],
      ];
      for (const [mode, patch, on] of steps) {
        const record = await on[mode](tenant, ref, patch, LIMITS);
        const document = await raw(tenant);
        const spans = TRAILER.exec(document)!.slice(1, 6).map(Number);
        const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");
        expect(spans).toEqual([
          bytes(record.conversationState),
          bytes(record.interruptedQueries),
          record.interruptedQueries.length,
          bytes(record.recentInteractions),
          record.recentInteractions.length,
        ]);
        expect(document).toBe(documentOf(record));
      }
    });
  });

  describe("A document without the trailer (written before it existed) is merged exactly, by scanning", () => {
    it.each<[string, Partial<ContextFields>, ContextFields]>([
      [
        "state and one interaction",
        { conversationState: { step: 2, added: true }, recentInteractions: [{ at: "now" }] },
        {
          ...contextOf(stored),
          conversationState: { ...stored.conversationState, step: 2, added: true },
          recentInteractions: [...stored.recentInteractions, { at: "now" }],
        },
      ],
      [
        "queries beyond the cap (the oldest go)",
        { interruptedQueries: ["4th", "5th"] },
        { ...contextOf(stored), interruptedQueries: [...stored.interruptedQueries.slice(1), "4th", "5th"] },
      ],
      [
        "preferences",
        { userPreferences: { spans: [] } },
        { ...contextOf(stored), userPreferences: { ...oddKeys, spans: [] } },
      ],
      ["an empty patch", {}, contextOf(stored)],
    ])("%s", async (_shape, patch, expected) => {
      const tenant = freshTenant();
      await put(tenant, oldLayout(stored));

      const fourQueries = sut.withDefaults({ maxInterruptedQueries: 4 });
      const document = await expectMerge(tenant, patch, expected, fourQueries);

      // The next merge goes by the trailer the first one wrote.
      await expectMerge(
        tenant,
        { interruptedQueries: ["next"] },
        {
          ...expected,
          interruptedQueries: [...expected.interruptedQueries, "next"].slice(-4),
        },
        fourQueries,
      );
      expect(document).toMatch(TRAILER);
    });
  });

  describe("A trailer that does not line up with the fields is not trusted: the merge scans", () => {
    /** The documents with a trailer of each kind, as [case, document]: `doc`'s own text with another trailer. */
    const trailerCases = (doc: SessionDocument): [string, string][] => {
      const current = encodeDocument(doc);
      const spansAt = current.lastIndexOf(',"spans":');
      return [
        [
          "byte lengths one off",
          `${current.slice(0, spansAt)},"spans":[${TRAILER.exec(current)!
            .slice(1)
            .map((n, i) => (i === 0 ? Number(n) + 1 : n))
            .join(",")}]}`,
        ],
        ["byte lengths of other fields", `${current.slice(0, spansAt)},"spans":[2,2,0,2,0]}`],
        ["lengths past the end", `${current.slice(0, spansAt)},"spans":[99999999,1,1,1,1]}`],
        ["a short trailer", `${current.slice(0, spansAt)},"spans":[1,2]}`],
        [
          "an entry index that does not line up with the objects",
          `${current.slice(0, current.lastIndexOf(',"entries":'))},"entries":"9,9;3,1","spans":[${TRAILER.exec(current)!
            .slice(1, 6)
            .join(",")},7]}`,
        ],
        [
          "an entry index of the right total length, split wrongly",
          (() => {
            const entriesAt = current.lastIndexOf(',"entries":"') + ',"entries":"'.length;
            const [state, preferences] = current.slice(entriesAt, current.indexOf('"', entriesAt)).split(";");
            const lengths = state.split(",").map(Number);
            // The first key one byte longer, its value one byte shorter: the same total.
            const wrong = [lengths[0] + 1, lengths[1] - 1, ...lengths.slice(2)].join(",");
            const index = `${wrong};${preferences}`;
            return `${current.slice(0, entriesAt - ',"entries":"'.length)},"entries":"${index}","spans":[${TRAILER.exec(
              current,
            )!
              .slice(1, 6)
              .join(",")},${index.length}]}`;
          })(),
        ],
      ];
    };

    it.each<[string, SessionDocument, string]>([
      ...trailerCases(stored).map(([name, document]): [string, SessionDocument, string] => [name, stored, document]),
      ...trailerCases(padded).map(([name, document]): [string, SessionDocument, string] => [
        `${name}, a document over 16 KB`,
        padded,
        document,
      ]),
    ])("%s", async (_case, doc, document) => {
      const tenant = freshTenant();
      await put(tenant, document);

      await expectMerge(
        tenant,
        { conversationState: { step: 3 }, recentInteractions: [{ n: 2 }] },
        {
          ...contextOf(doc),
          conversationState: { ...doc.conversationState, step: 3 },
          recentInteractions: [...doc.recentInteractions, { n: 2 }],
        },
      );
    });
  });
  describe("The lists' entry index: a cap drops entries by it; one that does not fit, or none, and the lists are scanned", () => {
    const indexesOf = (document: string) =>
      document
        .slice(document.lastIndexOf(',"entries":"') + ',"entries":"'.length, document.lastIndexOf('","spans":'))
        .split(";");
    const lengthsOf = (index: string) => (index.match(/\d{8}/g) ?? []).map(Number);
    const indexOf = (lengths: number[]) => lengths.map((n) => String(n).padStart(8, "0")).join("");

    it("the index holds each entry's byte length in 8 digits, as encodeDocument writes it", () => {
      const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");
      const indexes = indexesOf(encodeDocument(stored));
      expect(indexes).toHaveLength(4);
      expect(indexes[2]).toBe(indexOf(stored.interruptedQueries.map(bytes)));
      expect(indexes[3]).toBe(indexOf(stored.recentInteractions.map(bytes)));
    });

    /** The documents with an index of each kind, as [case, document]: `doc`'s own text with another index. */
    const indexCases = (doc: SessionDocument): [string, string][] => {
      const current = encodeDocument(doc);
      const entriesAt = current.lastIndexOf(',"entries":"');
      /** The document with `index` for its entries, the sixth span its length. */
      const withEntries = (index: string) =>
        `${current.slice(0, entriesAt)},"entries":"${index}","spans":[${TRAILER.exec(current)!
          .slice(1, 6)
          .join(",")},${index.length}]}`;
      const [cs, up, iq, ri] = indexesOf(current);
      const iqLengths = lengthsOf(iq);
      const riLengths = lengthsOf(ri);
      return [
        ["the objects' index only (written before the lists had one)", `${cs};${up}`],
        [
          "lengths of the dropped entries one off, the same total",
          `${cs};${up};${indexOf([iqLengths[0] + 1, iqLengths[1] - 1, iqLengths[2]])};${indexOf([
            riLengths[0] - 1,
            riLengths[1] + 1,
            riLengths[2],
          ])}`,
        ],
        [
          "the last length one off",
          `${cs};${up};${indexOf([...iqLengths.slice(0, 2), iqLengths[2] + 1])};${indexOf([
            ...riLengths.slice(0, 2),
            riLengths[2] - 1,
          ])}`,
        ],
        [
          "fewer lengths than entries, right where they are checked",
          `${cs};${up};${indexOf([iqLengths[0], iqLengths[2]])};${indexOf([riLengths[0], riLengths[1]])}`,
        ],
        ["a length cut short", `${cs};${up};${iq.slice(0, -1)};${ri.slice(1)}`],
        ["no lengths for entries", `${cs};${up};;`],
      ].map(([name, index]) => [name, withEntries(index)] as [string, string]);
    };

    it.each<[string, SessionDocument, string]>([
      ["the index as written", stored, encodeDocument(stored)],
      ...indexCases(stored).map(([name, document]): [string, SessionDocument, string] => [name, stored, document]),
      ["the index as written, a document over 16 KB", padded, encodeDocument(padded)],
      ...indexCases(padded).map(([name, document]): [string, SessionDocument, string] => [
        `${name}, a document over 16 KB`,
        padded,
        document,
      ]),
    ])("%s", async (_case, doc, document) => {
      const tenant = freshTenant();
      await put(tenant, document);
      const capped = sut.withDefaults({ maxInterruptedQueries: 4, maxRecentInteractions: 3 });

      // Each list capped (the oldest entries dropped), then untouched, then capped again by the index written.
      const first = {
        ...contextOf(doc),
        interruptedQueries: [...doc.interruptedQueries.slice(1), "4th", "5th"],
        recentInteractions: [...doc.recentInteractions.slice(2), { n: 2 }, { n: 3 }],
      };
      await expectMerge(
        tenant,
        { interruptedQueries: ["4th", "5th"], recentInteractions: [{ n: 2 }, { n: 3 }] },
        first,
        capped,
      );
      // What the caps dropped, in the log: [the count before, the entries dropped].
      expect(await lastUndo(tenant)).toBe(
        JSON.stringify({
          interruptedQueries: [3, doc.interruptedQueries.slice(0, 1)],
          recentInteractions: [3, doc.recentInteractions.slice(0, 2)],
        }),
      );
      const second = { ...first, conversationState: { ...first.conversationState, step: 2 } };
      await expectMerge(tenant, { conversationState: { step: 2 } }, second, capped);
      await expectMerge(
        tenant,
        { interruptedQueries: ["6th", "7th", "8th"], recentInteractions: [{ n: 4 }] },
        {
          ...second,
          interruptedQueries: [...second.interruptedQueries.slice(3), "6th", "7th", "8th"],
          recentInteractions: [...second.recentInteractions.slice(1), { n: 4 }],
        },
        capped,
      );
    });

    it("a document over 16 KB, its lists' indexes read in parts: capped, untouched, capped again", async () => {
      const tenant = freshTenant();
      const capped = sut.withDefaults({ maxInterruptedQueries: 150, maxRecentInteractions: 200 });
      const queries = Array.from({ length: 150 }, (_, i) => `query ${i} ${"]}".repeat(i % 7)}`);
      const interactions = Array.from({ length: 200 }, (_, i) => ({ i, text: "{[".repeat(i % 50) }));
      const base = { ...contextOf(stored), interruptedQueries: queries, recentInteractions: interactions };
      await put(tenant, encodeDocument({ ...stored, ...base }));
      expect(Buffer.byteLength(await raw(tenant))).toBeGreaterThan(16_384);

      const first = {
        ...base,
        interruptedQueries: [...queries.slice(3), "a", "b", "c"],
        recentInteractions: [...interactions.slice(1), { n: 1 }],
      };
      await expectMerge(tenant, { interruptedQueries: ["a", "b", "c"], recentInteractions: [{ n: 1 }] }, first, capped);
      expect(await lastUndo(tenant)).toBe(
        JSON.stringify({
          interruptedQueries: [150, queries.slice(0, 3)],
          recentInteractions: [200, interactions.slice(0, 1)],
        }),
      );
      const second = { ...first, userPreferences: { ...first.userPreferences, theme: "dark" } };
      await expectMerge(tenant, { userPreferences: { theme: "dark" } }, second, capped);
      const many = Array.from({ length: 160 }, (_, i) => `new ${i}`);
      await expectMerge(
        tenant,
        { interruptedQueries: many, recentInteractions: [] },
        { ...second, interruptedQueries: many.slice(10) },
        capped,
      );
    });

    it("a store at the cap keeps the newest entries and their lengths; what the caps dropped is in the change log", async () => {
      const tenant = freshTenant();
      const capped = sut.withDefaults({ maxInterruptedQueries: 2, maxRecentInteractions: 1 });
      const record = await capped.store(tenant, ref, contextOf(stored), LIMITS);
      expect(contextOf(record)).toEqual({
        ...contextOf(stored),
        interruptedQueries: stored.interruptedQueries.slice(1),
        recentInteractions: stored.recentInteractions.slice(2),
      });
      expect(await raw(tenant)).toBe(
        encodeDocument({
          version: 1,
          storedAt: +record.storedAt,
          lastUpdated: +record.lastUpdated,
          ttlSeconds: record.ttlSeconds,
          ...contextOf(record),
        }),
      );
    });
  });

  describe("The change log entry holds what the write changed, as stored (history-entry.ts)", () => {
    const entry = async (tenant: string) =>
      json<Record<string, unknown>>((await admin(sut).lindex(historyKey(tenant, ref.userId, ref.sessionId), 0))!);
    /** The entry's undo as its text: the script copies the replaced entries as they were stored. */
    const undoText = async (tenant: string) => JSON.stringify((await entry(tenant)).undo);

    it("a store's entry has no change unless a cap dropped entries it was given", async () => {
      const tenant = freshTenant();
      await sut.store.store(tenant, ref, { conversationState: tricky, recentInteractions: [{ n: 1 }] }, LIMITS);
      expect(Object.keys(await entry(tenant))).not.toContain("change");
      const capped = sut.withDefaults({ maxRecentInteractions: 1 });
      await capped.store(tenant, ref, { recentInteractions: [{ n: 1 }, { n: 2 }] }, LIMITS);
      expect((await entry(tenant)).change).toEqual({
        conversationState: {},
        interruptedQueries: [],
        recentInteractions: [{ n: 1 }, { n: 2 }],
        userPreferences: {},
      });
    });

    it("a merge's undo holds the replaced entries as stored, in runs, and the keys it added", async () => {
      const tenant = freshTenant();
      const state = '{"a":1,"b":{"x":"}"},"c":[3],"d":"4"}';
      await sut.store.store(tenant, ref, { conversationState: json(state), userPreferences: oddKeys }, LIMITS);
      const merges: [patch: Partial<ContextFields>, undo: string][] = [
        [
          { conversationState: json('{"d":40,"n":1,"a":10,"b":20}') },
          '{"conversationState":{"a":1,"b":{"x":"}"},"d":"4"},"added":{"conversationState":["n"]}}',
        ],
        [
          { conversationState: json('{"n":2,"d":41,"c":31,"b":21,"a":11}') },
          '{"conversationState":{"a":10,"b":20,"c":[3],"d":40,"n":1}}',
        ],
        [{ userPreferences: { "": 40, m: 1 } }, '{"userPreferences":{"":4},"added":{"userPreferences":["m"]}}'],
        [
          { conversationState: {}, userPreferences: { ...oddKeys, m: 2 } },
          `{"conversationState":{},"userPreferences":${JSON.stringify({ ...oddKeys, "": 40, m: 1 })}}`,
        ],
      ];
      for (const [patch, undo] of merges) {
        await sut.store.merge(tenant, ref, patch, LIMITS);
        expect(await undoText(tenant)).toBe(undo);
      }
    });

    it("the same in a document over 16 KB, whose large object is read as its keys and the runs a merge keeps", async () => {
      const tenant = freshTenant();
      const big = "}]".repeat(4500);
      const state = `{"a":1,"b":{"x":"}"},"big":${JSON.stringify(big)},"c":[3],"d":"4"}`;
      const interactions = Array.from({ length: 40 }, (_, i) => ({ i, text: "[{".repeat(250) }));
      await sut.store.store(tenant, ref, { conversationState: json(state), recentInteractions: interactions }, LIMITS);
      expect(Buffer.byteLength(await raw(tenant))).toBeGreaterThan(16_384);
      const merges: [patch: JsonObject, state: JsonObject, undo: string][] = [
        [
          json('{"d":40,"n":1,"a":10,"b":20}'),
          { a: 10, b: 20, big, c: [3], d: 40, n: 1 },
          '{"conversationState":{"a":1,"b":{"x":"}"},"d":"4"},"added":{"conversationState":["n"]}}',
        ],
        [json('{"c":30}'), { a: 10, b: 20, big, c: 30, d: 40, n: 1 }, '{"conversationState":{"c":[3]}}'],
        [
          // Every key, in the stored order: the undo is the stored object itself.
          json('{"a":11,"b":21,"big":"small","c":31,"d":41,"n":2}'),
          { a: 11, b: 21, big: "small", c: 31, d: 41, n: 2 },
          `{"conversationState":${JSON.stringify({ a: 10, b: 20, big, c: 30, d: 40, n: 1 })}}`,
        ],
      ];
      for (const [patch, merged, undo] of merges) {
        const record = await sut.store.merge(tenant, ref, { conversationState: patch }, LIMITS);
        expect(record.conversationState).toEqual(merged);
        expect(await undoText(tenant)).toBe(undo);
        expect(await raw(tenant)).toBe(documentOf(record));
      }
    });

    it("entries written before (a store's change, a merge's undo as [key, old value] pairs) read alike", async () => {
      const tenant = freshTenant();
      const capped = sut.withDefaults({ maxRecentInteractions: 2 });
      await sut.store.store(tenant, ref, { conversationState: json('{"a":1,"__proto__":{"p":1}}') }, LIMITS);
      await sut.store.merge(tenant, ref, { conversationState: json('{"__proto__":2,"n":3,"a":4}') }, LIMITS);
      await capped.store(tenant, ref, { userPreferences: { x: 1 }, recentInteractions: [{}, { n: 1 }, {}] }, LIMITS);
      await capped.merge(tenant, ref, { userPreferences: { y: 2, x: 3 }, recentInteractions: [{ n: 2 }] }, LIMITS);
      const before = await sut.store.history(tenant, ref, 10);

      const log = historyKey(tenant, ref.userId, ref.sessionId);
      const entries = (await admin(sut).lrange(log, 0, -1)).map((text) => json<Record<string, unknown>>(text));
      for (const [i, e] of entries.entries()) {
        const { undo, ...rest } = e as { undo: Record<string, unknown> } & Record<string, unknown>;
        const change = e.change ?? contextOf(before.versions[i].context);
        const { added, ...fields } = undo as { added?: Record<string, string[]> };
        for (const field of ["conversationState", "userPreferences"]) {
          const replaced = fields[field as keyof typeof fields] as JsonObject | undefined;
          if (replaced === undefined || Array.isArray(replaced) || e.operation !== "MERGE") continue;
          (fields as Record<string, unknown>)[field] = [
            ...Object.keys(replaced).map((key) => [key, replaced[key]]),
            ...(added?.[field] ?? []).map((key) => [key]),
          ];
        }
        await admin(sut).lset(log, i, JSON.stringify({ ...rest, change, undo: fields }));
      }

      expect(await sut.store.history(tenant, ref, 10)).toEqual(before);
      const [latest] = (await admin(sut).lrange(log, 0, 0)).map((text) => json<Record<string, unknown>>(text));
      expect(latest.undo).toEqual({ userPreferences: [["x", 1], ["y"]], recentInteractions: [2, [{ n: 1 }]] });
    });
  });
});
