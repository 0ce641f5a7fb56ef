// The unit of work: the one way a mutation writes. It opens the transaction, hands the mutation a
// `WorkTx` (a transaction that carries the batch of live notices it collects), writes the noted
// workspace events last, commits, and only then announces the notices (live.ts). A creating
// mutation with an idempotency key (`create`) also claims the key in the same transaction, so a
// retry returns the first result instead of creating twice.
//
// What makes forgetting a piece an error rather than a silent loss:
// - `noteStatus`, `noteEvent`, `noteAccess`, `noteAccount`, `noteLogSourcesFinished` and `audit`
//   take a `WorkTx`, which only this file makes: a helper called inside a bare `prisma.$transaction`
//   does not compile.
// - No service calls `$transaction` itself; test/build/unit-of-work.test.ts holds the tree to that.
// - A unit commits only once its mutation has written an audit entry (`audit`) or said why it writes
//   none (`unaudited`); otherwise it rolls back with an error naming the omission. This one is
//   checked when the mutation runs, so every mutation's tests (and the authorization matrix, which
//   runs them all) catch it.
import type { Viewer } from "../../auth/viewer.js";
import type { Prisma, PrismaClient } from "../../generated/prisma/client.js";
import { conflict } from "../../schema/errors.js";
import { AUDIT_MARK, unaudited, type AuditMark } from "./audit.js";
import { checkIdempotencyKey, callerOf, replayStored, requestHash } from "./idempotency.js";
import { LIVE_BATCH, LiveBatch, type Live, type WorkTx } from "./live.js";

export type { WorkTx } from "./live.js";

/** A creating request: at most once per (caller, operation, key) when it carries a key. */
export interface CreateRequest {
  viewer: Viewer;
  /** The mutation's name; keys are scoped to it. */
  operation: string;
  key: string | null | undefined;
  /** What the caller asked for: the same key with different input is a CONFLICT. */
  input: unknown;
}

export interface TransactionOptions {
  timeout?: number;
  maxWait?: number;
}

export interface UnitOfWork {
  /** One transaction; its notices are announced once it has committed (never if it rolls back). */
  run<T>(fn: (tx: WorkTx) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** A creating mutation: `run`, plus the idempotency key claimed in the same transaction. */
  create(request: CreateRequest, fn: (tx: WorkTx) => Promise<{ id: string }>): Promise<{ id: string; replayed: boolean }>;
}

/**
 * `live` announces what committed; without it (a command-line tool, which has no subscribers and no
 * pub/sub) notices are dropped, and servers still hear of credential changes from the database.
 */
export function createUnitOfWork(deps: { prisma: PrismaClient; live?: Pick<Live, "announce"> }): UnitOfWork {
  const { prisma, live } = deps;

  async function run<T>(fn: (tx: WorkTx) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const batch = new LiveBatch();
    const result = await prisma.$transaction(async (tx) => {
      const mark: AuditMark = { decided: false };
      const work = carry(tx, batch, mark);
      const value = await fn(work);
      if (mark.decided === false) {
        throw new Error("A unit of work ended without an audit decision: write its entry with audit() or say why it writes none with unaudited() (shared/audit.ts)");
      }
      // Last: taking the workspaces' next event cursors locks their rows until commit (live.ts).
      await batch.flush(work);
      return value;
    }, options);
    live?.announce(batch);
    return result;
  }

  return {
    run,
    async create(request, fn) {
      const { key } = request;
      if (key == null) {
        const { id } = await run(fn);
        return { id, replayed: false };
      }
      checkIdempotencyKey(key);
      const caller = callerOf(request.viewer);
      const hash = requestHash(request.input);
      const { operation } = request;
      return run(async (tx) => {
        const inserted = await tx.$executeRaw`
          INSERT INTO "IdempotencyKey" ("caller", "operation", "key", "requestHash")
          VALUES (${caller}, ${operation}, ${key}, ${hash})
          ON CONFLICT DO NOTHING`;
        if (inserted === 0) {
          // Another request with this key committed first (or is running: its row lock made this wait).
          const first = await tx.idempotencyKey.findUniqueOrThrow({ where: { caller_operation_key: { caller, operation, key } } });
          const id = replayStored(first, hash, () =>
            conflict(`The idempotency key "${key}" was already used for a different ${operation} request`, {
              fields: [{ field: "input.idempotencyKey", message: "already used with different input" }],
            }),
          );
          unaudited(tx, "replayed");
          return { id, replayed: true };
        }
        const created = await fn(tx);
        await tx.idempotencyKey.update({ where: { caller_operation_key: { caller, operation, key } }, data: { resultId: created.id } });
        return { id: created.id, replayed: false };
      });
    },
  };
}

/**
 * The transaction, carrying the batch its notes go to and its audit mark. A view of its own per
 * transaction: Prisma hands concurrent transactions clients that share their properties, so a mark
 * set on the client itself would reach the other transactions' notes.
 */
function carry(tx: Prisma.TransactionClient, batch: LiveBatch, mark: AuditMark): WorkTx {
  return new Proxy(tx, {
    get: (target, property) =>
      property === LIVE_BATCH ? batch : property === AUDIT_MARK ? mark : Reflect.get(target, property),
  }) as WorkTx;
}
