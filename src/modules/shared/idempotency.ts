// Idempotency keys for creating mutations: a retry with the same key (same caller, same operation)
// returns the first result instead of creating a second object; the same key with different input
// is a CONFLICT. The key row is inserted in the creating transaction, so two concurrent requests
// with one key serialize on its primary key: the second waits, then sees the first's result.
import { createHash } from "node:crypto";
import type { Viewer } from "../../auth/viewer.js";
import type { Prisma, PrismaClient } from "../../generated/prisma/client.js";
import { conflict, notAuthenticated, validationError } from "../../schema/errors.js";

export const IDEMPOTENCY_KEY_MAX = 200;

function callerOf(viewer: Viewer): string {
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

/**
 * Runs `create` in a transaction; with a key, at most once per (caller, operation, key).
 * Returns the id of the created (or first-created) object.
 */
export async function idempotentCreate(
  prisma: PrismaClient,
  viewer: Viewer,
  operation: string,
  key: string | null | undefined,
  input: unknown,
  create: (tx: Prisma.TransactionClient) => Promise<{ id: string }>,
): Promise<{ id: string; replayed: boolean }> {
  if (key == null) {
    const created = await prisma.$transaction((tx) => create(tx));
    return { id: created.id, replayed: false };
  }
  if (key.length < 1 || key.length > IDEMPOTENCY_KEY_MAX) {
    throw validationError([{ field: "input.idempotencyKey", message: `must be 1 to ${IDEMPOTENCY_KEY_MAX} characters` }]);
  }
  const caller = callerOf(viewer);
  const hash = requestHash(input);
  return prisma.$transaction(async (tx) => {
    const inserted = await tx.$executeRaw`
      INSERT INTO "IdempotencyKey" ("caller", "operation", "key", "requestHash")
      VALUES (${caller}, ${operation}, ${key}, ${hash})
      ON CONFLICT DO NOTHING`;
    if (inserted === 0) {
      const first = await tx.idempotencyKey.findUniqueOrThrow({ where: { caller_operation_key: { caller, operation, key } } });
      if (first.requestHash !== hash) {
        throw conflict(`The idempotency key "${key}" was already used for a different ${operation} request`, {
          fields: [{ field: "input.idempotencyKey", message: "already used with different input" }],
        });
      }
      if (!first.resultId) throw conflict(`The request with idempotency key "${key}" is still running; retry shortly`);
      return { id: first.resultId, replayed: true };
    }
    const created = await create(tx);
    await tx.idempotencyKey.update({
      where: { caller_operation_key: { caller, operation, key } },
      data: { resultId: created.id },
    });
    return { id: created.id, replayed: false };
  });
}
