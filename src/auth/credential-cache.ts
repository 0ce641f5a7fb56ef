// Credentials checked recently, kept in memory so that a warm request authenticates without a
// database round trip (or a JWT verification). Correctness comes from the database, not from a
// timeout: every change that could end or narrow a credential (sign-out, revocation, rotation,
// a role change, a decommission, whichever code or person makes it) NOTIFYs every server at commit
// (triggers in the migration `credential_notices`), and the cache forgets that user's or machine's
// entries. While those notices cannot be received (the LISTEN connection is down) the cache is not
// used at all, and it starts empty when they can again.
import type { Viewer } from "./viewer.js";

/** An upper bound on how long an entry is trusted even with notices flowing. */
const ENTRY_TTL_MS = 60_000;
const MAX_ENTRIES = 20_000;
export const CREDENTIAL_NOTICE_CHANNEL = "spindle_credentials";

/** Whose credential an entry is: what a notice names. */
export type CredentialSubject = `user:${string}` | `machine:${string}`;

interface Entry {
  viewer: Viewer;
  subject: CredentialSubject;
  expiresAt: number;
}

export interface CredentialCache {
  get(key: string): Viewer | undefined;
  /**
   * Call before reading a credential from the database; pass the result to `set`, which keeps the
   * entry only if no notice arrived in between (the read may have seen the row before the change).
   */
  begin(): number;
  set(key: string, ticket: number, entry: { viewer: Viewer; subject: CredentialSubject; validUntil?: Date | null }): void;
  /** A notice's payload: forget every entry of that user or machine. */
  forget(subject: string): void;
  /** Whether notices are being received; while not, nothing is cached or served. */
  setListening(listening: boolean): void;
  readonly size: number;
}

export function createCredentialCache(options: { now?: () => number } = {}): CredentialCache {
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const bySubject = new Map<string, Set<string>>();
  let listening = false;
  // Bumped by every notice and state change: a read that started before one is not cached.
  let generation = 0;

  function drop(key: string) {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    const keys = bySubject.get(entry.subject);
    keys?.delete(key);
    if (keys?.size === 0) bySubject.delete(entry.subject);
  }

  function clear() {
    entries.clear();
    bySubject.clear();
  }

  return {
    get(key) {
      if (!listening) return undefined;
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (entry.expiresAt <= now()) {
        drop(key);
        return undefined;
      }
      return entry.viewer;
    },
    begin: () => generation,
    set(key, ticket, { viewer, subject, validUntil }) {
      if (!listening || ticket !== generation) return;
      const expiresAt = Math.min(now() + ENTRY_TTL_MS, validUntil ? validUntil.getTime() : Infinity);
      if (expiresAt <= now()) return;
      drop(key);
      // Oldest first: Map keeps insertion order.
      if (entries.size >= MAX_ENTRIES) drop(entries.keys().next().value!);
      entries.set(key, { viewer, subject, expiresAt });
      let keys = bySubject.get(subject);
      if (!keys) bySubject.set(subject, (keys = new Set()));
      keys.add(key);
    },
    forget(subject) {
      generation++;
      for (const key of bySubject.get(subject) ?? []) entries.delete(key);
      bySubject.delete(subject);
    },
    setListening(state) {
      generation++;
      listening = state;
      clear();
    },
    get size() {
      return entries.size;
    },
  };
}
