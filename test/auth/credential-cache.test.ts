// The credential cache's own rules (the end-to-end revocation tests are in
// test/graphql/request-path.test.ts): nothing is served or kept while notices are not heard, a
// read that raced a notice is not cached, entries end with their credential.
import { describe, expect, it } from "vitest";
import { createCredentialCache } from "../../src/auth/credential-cache.js";
import type { Viewer } from "../../src/auth/viewer.js";

const viewer = { kind: "session", via: "bearer", userId: "u1", role: "USER", sessionId: "s1", scopes: new Set() } as unknown as Viewer;

describe("credential cache", () => {
  it("serves and keeps nothing until notices are heard, and starts empty each time they are heard again", () => {
    const cache = createCredentialCache();
    cache.set("jwt:a", cache.begin(), { viewer, subject: "user:u1" });
    expect(cache.get("jwt:a")).toBeUndefined();

    cache.setListening(true);
    cache.set("jwt:a", cache.begin(), { viewer, subject: "user:u1" });
    expect(cache.get("jwt:a")).toBe(viewer);

    // The LISTEN connection dropped: a notice may be lost from now on.
    cache.setListening(false);
    expect(cache.get("jwt:a")).toBeUndefined();
    cache.setListening(true);
    expect(cache.get("jwt:a")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("does not cache a read that a notice overtook (it may have seen the row before the change)", () => {
    const cache = createCredentialCache();
    cache.setListening(true);
    const ticket = cache.begin();
    cache.forget("user:someone-else");
    cache.set("jwt:a", ticket, { viewer, subject: "user:u1" });
    expect(cache.get("jwt:a")).toBeUndefined();
  });

  it("forgets every entry of the user or machine a notice names, and only those", () => {
    const cache = createCredentialCache();
    cache.setListening(true);
    cache.set("jwt:a", cache.begin(), { viewer, subject: "user:u1" });
    cache.set("key:b", cache.begin(), { viewer, subject: "user:u1" });
    cache.set("machine:c", cache.begin(), { viewer, subject: "machine:m1" });
    cache.forget("user:u1");
    expect([cache.get("jwt:a"), cache.get("key:b")]).toEqual([undefined, undefined]);
    expect(cache.get("machine:c")).toBe(viewer);
  });

  it("ends an entry when its credential ends, and after a minute at most", () => {
    let now = 1_000_000;
    const cache = createCredentialCache({ now: () => now });
    cache.setListening(true);
    cache.set("jwt:short", cache.begin(), { viewer, subject: "user:u1", validUntil: new Date(now + 5_000) });
    cache.set("jwt:long", cache.begin(), { viewer, subject: "user:u1", validUntil: new Date(now + 3_600_000) });
    now += 5_000;
    expect(cache.get("jwt:short")).toBeUndefined();
    expect(cache.get("jwt:long")).toBe(viewer);
    now += 55_000;
    expect(cache.get("jwt:long")).toBeUndefined();
  });
});
