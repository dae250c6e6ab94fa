import { SessionLog, type LogStorage, type SessionEventLike } from "../../examples/web/src/session-log";

/**
 * The web example's log of received changes (examples/web/src/session-log.ts): what lets a reloaded page resume
 * after the last version it had, and what the page shows as "none missing, none twice".
 */

/** sessionStorage as a Map: what one browser tab keeps across its reloads. */
const tab = (): LogStorage & { items: Map<string, string> } => {
  const items = new Map<string, string>();
  return { items, getItem: (key) => items.get(key) ?? null, setItem: (key, value) => void items.set(key, value) };
};

const updated = (version: number, extra: Partial<SessionEventLike> = {}): SessionEventLike => ({
  type: "UPDATED",
  version,
  operation: "MERGE",
  change: { recentInteractions: [{ from: "A", text: `message ${version}` }] },
  resync: false,
  ...extra,
});

describe("the web example's session log", () => {
  describe("resuming", () => {
    it("resumes after the last version received, across a reload of the tab", () => {
      const storage = tab();
      const first = new SessionLog(storage, "k");
      expect(first.afterVersion).toBe(0); // nothing yet: the whole kept history
      first.accept(updated(1));
      first.accept(updated(2));

      const reloaded = new SessionLog(storage, "k");
      expect(reloaded.afterVersion).toBe(2);
      expect(reloaded.load).toBe(2);
      reloaded.accept(updated(3));
      expect(reloaded.snapshot().entries.map((e) => [e.version, e.load, e.note])).toEqual([
        [1, 1, "message 1"],
        [2, 1, "message 2"],
        [3, 2, "message 3"],
      ]);
    });

    it("keeps each tab's log apart, and starts again from an unreadable one", () => {
      const storage = tab();
      new SessionLog(storage, "s1").accept(updated(1));
      expect(new SessionLog(storage, "s2").afterVersion).toBe(0);
      storage.setItem("s3", "{not json");
      expect(new SessionLog(storage, "s3").snapshot().entries).toEqual([]);
    });
  });

  describe("repeats", () => {
    it("drops a version it already has (a resubscription that replays from an older version) and counts it", () => {
      const log = new SessionLog(tab(), "k");
      expect([1, 2, 1, 2, 3].map((v) => log.accept(updated(v)))).toEqual([true, true, false, false, true]);
      expect(log.snapshot().entries.map((e) => e.version)).toEqual([1, 2, 3]);
      expect(log.check()).toEqual({ from: 1, to: 3, missing: [], repeats: 2 });
    });

    it("drops a resync that is not newer than what it has", () => {
      const log = new SessionLog(tab(), "k");
      log.accept(updated(5));
      expect(log.accept(updated(5, { resync: true, operation: null, change: null }))).toBe(false);
      expect(log.accept(updated(9, { resync: true, operation: null, change: null }))).toBe(true);
      expect(log.afterVersion).toBe(9);
    });
  });

  describe("the check the page shows", () => {
    it("names a version that never arrived", () => {
      const log = new SessionLog(tab(), "k");
      for (const version of [1, 2, 5, 6]) log.accept(updated(version));
      expect(log.check()).toEqual({ from: 1, to: 6, missing: [3, 4], repeats: 0 });
    });

    it("starts a run at a resync: the versions it stands for are not missing", () => {
      const log = new SessionLog(tab(), "k");
      log.accept(updated(1));
      log.accept(updated(30, { resync: true, operation: null, change: null }));
      log.accept(updated(31));
      expect(log.check()).toEqual({ from: 30, to: 31, missing: [], repeats: 0 });
    });

    it("ends a run at a deletion: the session created again starts at version 1", () => {
      const log = new SessionLog(tab(), "k");
      log.accept(updated(1));
      log.accept(updated(2));
      expect(log.check()).toMatchObject({ from: 1, to: 2 });
      log.accept({ type: "DELETED", version: 2, resync: false });
      expect(log.check()).toMatchObject({ from: null, to: null });
      expect(log.afterVersion).toBe(0);
      expect(log.accept(updated(1))).toBe(true);
      expect(log.check()).toEqual({ from: 1, to: 1, missing: [], repeats: 0 });
    });
  });

  it("tells its listeners about each change", () => {
    const log = new SessionLog(tab(), "k");
    let calls = 0;
    const stop = log.subscribe(() => calls++);
    const before = log.snapshot();
    log.accept(updated(1));
    expect(calls).toBe(1);
    expect(log.snapshot()).not.toBe(before); // a new snapshot, so React renders again
    stop();
    log.accept(updated(2));
    expect(calls).toBe(1);
  });
});
