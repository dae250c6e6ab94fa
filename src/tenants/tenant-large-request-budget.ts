/** Options of TenantLargeRequestBudget. */
export interface LargeRequestBudgetOptions {
  /** A request whose body is larger than this many bytes is large (TENANT_LARGE_REQUEST_BYTES, default 16 KiB). */
  readonly largeRequestBytes: number;
  /** Bytes of large requests each tenant may send per second, on average (TENANT_LARGE_BYTES_PER_SECOND, 512 KiB). */
  readonly bytesPerSecond: number;
  /**
   * Most bytes of large requests a tenant may send at once after a pause: the bucket's size. At least the largest
   * request body, so that any request can pass once the bucket is full.
   */
  readonly burstBytes: number;
  /** The clock, in ms (tests). Default: performance.now. */
  readonly now?: () => number;
}

interface Bucket {
  bytes: number;
  at: number;
}

/** Tenants whose buckets are looked through, at most, for full ones to forget on each large request. */
const SWEEP_EVERY = 1024;

/**
 * Each tenant's share of the large requests one server process takes: a token bucket of bytes per tenant, refilled
 * at `bytesPerSecond` up to `burstBytes`. A large request takes its body's length from its tenant's bucket, or is
 * refused when the bucket holds less (the caller answers SERVICE_UNAVAILABLE, retryable, before reading the body).
 * Small requests pass untouched: one large request holds the server's single event loop for tens of milliseconds
 * (parsing, checking and serializing its values; a write, Redis too), so large requests are what make every other
 * tenant wait; small ones are bounded by the in-flight limits.
 */
export class TenantLargeRequestBudget {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private sinceSweep = 0;

  constructor(private readonly options: LargeRequestBudgetOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Whether a request of `bytes` is large, and so takes from its tenant's budget. */
  isLarge(bytes: number): boolean {
    return bytes > this.options.largeRequestBytes;
  }

  /**
   * Takes `bytes` from `tenantId`'s bucket: 0 when they were there, else the milliseconds until they will be (nothing
   * taken). A small request always gets 0.
   */
  take(tenantId: string, bytes: number): number {
    if (!this.isLarge(bytes)) return 0;
    const { bytesPerSecond, burstBytes } = this.options;
    const now = this.now();
    if (++this.sinceSweep >= SWEEP_EVERY) this.sweep(now);
    const needed = Math.min(bytes, burstBytes);
    const bucket = this.buckets.get(tenantId) ?? { bytes: burstBytes, at: now };
    bucket.bytes = Math.min(burstBytes, bucket.bytes + ((now - bucket.at) * bytesPerSecond) / 1000);
    bucket.at = now;
    this.buckets.set(tenantId, bucket);
    if (bucket.bytes < needed) return Math.ceil(((needed - bucket.bytes) * 1000) / bytesPerSecond);
    bucket.bytes -= needed;
    return 0;
  }

  /** Tenants with a bucket now (tests). */
  get tenants(): number {
    return this.buckets.size;
  }

  // A full bucket is the same as none: forget it, so that tenants that stopped sending cost no memory.
  private sweep(now: number): void {
    this.sinceSweep = 0;
    const { bytesPerSecond, burstBytes } = this.options;
    for (const [tenantId, bucket] of this.buckets) {
      if (bucket.bytes + ((now - bucket.at) * bytesPerSecond) / 1000 >= burstBytes) this.buckets.delete(tenantId);
    }
  }
}
