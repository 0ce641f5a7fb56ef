// Idempotency keys for creating mutations: a retry with the same key (same caller, same operation)
// returns the first result instead of creating a second object; the same key with different input
// is a CONFLICT. The unit of work (unit-of-work.ts, `create`) inserts the key row in the creating
// transaction, so two concurrent requests with one key serialize on its primary key: the second
// waits, then sees the first's result. This file holds the rules both it and log ingestion follow.
import { createHash } from "node:crypto";
import type { Viewer } from "../../auth/viewer.js";
import { conflict, notAuthenticated, validationError } from "../../schema/errors.js";

export const IDEMPOTENCY_KEY_MAX = 200;

export function callerOf(viewer: Viewer): string {
  switch (viewer.kind) {
    case "session":
      return `user:${viewer.userId}`;
    case "apiKey":
      return `apiKey:${viewer.apiKeyId}`;
    case "machine":
      return `machine:${viewer.machineId}`;
    default:
      throw notAuthenticated();
  }
}

/** Stable across key order, so `{a,b}` and `{b,a}` are the same request. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([key, v]) => v !== undefined && key !== "idempotencyKey")
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

export const requestHash = (input: unknown) => createHash("sha256").update(JSON.stringify(canonical(input))).digest("hex");

/** A key's length is checked before anything is stored under it. */
export function checkIdempotencyKey(key: string): void {
  if (key.length < 1 || key.length > IDEMPOTENCY_KEY_MAX) {
    throw validationError([{ field: "input.idempotencyKey", message: `must be 1 to ${IDEMPOTENCY_KEY_MAX} characters` }]);
  }
}

/**
 * The rule for a key found already stored: the same request gets the first one's result; different
 * input under the key is `mismatch()`; a first request still running (no result yet) is a CONFLICT
 * to retry. Used by the unit of work's `create` and by log ingestion's one-statement append.
 */
export function replayStored(stored: { key: string; requestHash: string; resultId: string | null }, hash: string, mismatch: () => Error): string {
  if (stored.requestHash !== hash) throw mismatch();
  if (!stored.resultId) throw conflict(`The request with idempotency key "${stored.key}" is still running; retry shortly`);
  return stored.resultId;
}
