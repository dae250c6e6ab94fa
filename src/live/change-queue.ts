import type { SessionChange } from "./session-change";

/** What a follower takes from its queue next. */
export type QueuedItem =
  | { readonly kind: "change"; readonly change: SessionChange }
  /** Changes may have been lost: read where the session stands. */
  | { readonly kind: "missed" }
  /** The consumer fell too far behind: the queue stopped taking changes. */
  | { readonly kind: "overflow" }
  | { readonly kind: "closed" };

/**
 * The live changes one subscription has not taken yet, bounded: a consumer that stops reading (a full socket) makes
 * it overflow instead of growing. A `missed` mark is kept once however often it comes.
 */
export class ChangeQueue {
  private readonly items: SessionChange[] = [];
  private missedMark = false;
  private overflowed = false;
  private closed = false;
  private waiting: ((item: QueuedItem) => void) | undefined;

  /** `onOverflow` runs once, at the change that overflows: the consumer may be stuck and never ask again. */
  constructor(
    private readonly maxQueued: number,
    private readonly onOverflow: () => void,
  ) {}

  push(change: SessionChange): void {
    if (this.closed || this.overflowed) return;
    if (this.items.length >= this.maxQueued) {
      this.overflowed = true;
      this.items.length = 0;
      this.onOverflow();
    } else {
      this.items.push(change);
    }
    this.wake();
  }

  markMissed(): void {
    if (this.closed) return;
    this.missedMark = true;
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.items.length = 0;
    this.wake();
  }

  get length(): number {
    return this.items.length;
  }

  next(): Promise<QueuedItem> {
    const item = this.take();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  private take(): QueuedItem | undefined {
    if (this.closed) return { kind: "closed" };
    if (this.overflowed) return { kind: "overflow" };
    // A mark goes before queued changes: reading where the session stands covers them too.
    if (this.missedMark) {
      this.missedMark = false;
      return { kind: "missed" };
    }
    const change = this.items.shift();
    return change === undefined ? undefined : { kind: "change", change };
  }

  private wake(): void {
    const waiting = this.waiting;
    if (waiting === undefined) return;
    const item = this.take();
    if (item === undefined) return;
    this.waiting = undefined;
    waiting(item);
  }
}
