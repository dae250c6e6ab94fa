import { TenantLargeRequestBudget } from "../../src/tenants/tenant-large-request-budget";

/** A budget of 1,000 bytes a second, a bucket of 4,000, requests over 100 bytes large; the clock is the test's. */
function budget() {
  let now = 0;
  const subject = new TenantLargeRequestBudget({
    largeRequestBytes: 100,
    bytesPerSecond: 1000,
    burstBytes: 4000,
    now: () => now,
  });
  return { subject, advance: (ms: number) => (now += ms) };
}

describe("TenantLargeRequestBudget: each tenant's share of large requests", () => {
  it("lets small requests through without counting them", () => {
    const { subject } = budget();
    for (let i = 0; i < 1000; i++) expect(subject.take("t", 100)).toBe(0);
    expect(subject.tenants).toBe(0);
  });

  it("takes large requests from a full bucket, then refuses with the time until they fit", () => {
    const { subject } = budget();
    expect(subject.take("t", 3000)).toBe(0);
    expect(subject.take("t", 1000)).toBe(0);
    expect(subject.take("t", 500)).toBe(500); // the bucket is empty: 500 bytes at 1,000 a second
  });

  it("refills at the rate, up to the bucket's size", () => {
    const { subject, advance } = budget();
    expect(subject.take("t", 4000)).toBe(0);
    advance(250);
    expect(subject.take("t", 300)).toBe(50);
    expect(subject.take("t", 250)).toBe(0);
    advance(60_000);
    expect(subject.take("t", 4000)).toBe(0);
    expect(subject.take("t", 101)).toBe(101);
  });

  it("takes a request larger than the bucket once the bucket is full", () => {
    const { subject, advance } = budget();
    expect(subject.take("t", 10_000)).toBe(0);
    expect(subject.take("t", 10_000)).toBe(4000);
    advance(4000);
    expect(subject.take("t", 10_000)).toBe(0);
  });

  it("keeps tenants apart: one tenant's empty bucket refuses nobody else", () => {
    const { subject } = budget();
    expect(subject.take("noisy", 4000)).toBe(0);
    expect(subject.take("noisy", 1000)).toBe(1000);
    expect(subject.take("quiet", 4000)).toBe(0);
  });

  it("forgets full buckets, so tenants that stopped sending cost no memory", () => {
    const { subject, advance } = budget();
    for (let i = 0; i < 1023; i++) subject.take(`t${i}`, 1000);
    expect(subject.tenants).toBe(1023);
    advance(1000); // every bucket full again
    subject.take("last", 1000); // the 1,024th large request looks through them
    expect(subject.tenants).toBe(1);
  });
});
