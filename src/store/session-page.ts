import type { SessionRecord } from "../sessions/session-record";
import type { PageCursor, SessionIndexPage } from "../sessions/session-store";
import { refFromMember } from "./keys";

/**
 * Orders index entries as Redis orders a sorted set read in reverse: last write descending, then member bytes
 * descending. Both stores page in this order, so a cursor means the same in each.
 */
export function newestFirst(a: PageCursor, b: PageCursor): number {
  return b.lastUpdated - a.lastUpdated || Buffer.compare(Buffer.from(b.member), Buffer.from(a.member));
}

/**
 * The page that follows `after`, from `entries` in newest-first order that start at the cursor's own last-write
 * time. Entries sharing that time which come before or at the cursor (member bytes not below it) were shown
 * already and are skipped; so a session written again while a client pages moves to the top instead of showing
 * twice, and no unchanged session is skipped.
 */
export function pageAfter(
  entries: readonly (PageCursor & { record: SessionRecord | null })[],
  after: PageCursor | undefined,
  first: number,
  totalCount: number,
): SessionIndexPage {
  const remaining = after
    ? entries.filter(
        (e) =>
          e.lastUpdated < after.lastUpdated ||
          (e.lastUpdated === after.lastUpdated && Buffer.compare(Buffer.from(e.member), Buffer.from(after.member)) < 0),
      )
    : entries;
  return {
    entries: remaining
      .slice(0, first)
      .map(({ record, ...cursor }) => ({ ref: refFromMember(cursor.member), cursor, record })),
    hasNextPage: remaining.length > first,
    totalCount,
  };
}
