// Retention: each source keeps at most `maxLinesPerSource` of its newest lines, none older than
// `maxAgeSeconds`. Removal is contiguous from the oldest line: `prunedThrough` rises and every line
// at or below it goes, in one transaction, so readers asking for removed cursors are told the range.
// Every replica runs the job; a transaction-scoped advisory lock lets one at a time do the work,
// and the statements are idempotent anyway (a second run finds nothing to do). The same job forgets
// idempotency keys past their time to live: log batch sequences arrive by the hundred per second.
import type { UnitOfWork } from "../shared/unit-of-work.js";
import type { Logger } from "../../infra/logger.js";
import { unaudited } from "../shared/audit.js";

export interface RetentionLimits {
  maxLinesPerSource: number;
  maxAgeSeconds: number;
  /** Idempotency keys older than this are deleted (unset: kept). */
  idempotencyTtlSeconds?: number;
}

export interface RetentionResult {
  /** False when another replica held the lock (this run did nothing). */
  ran: boolean;
  sources: number;
  linesDeleted: number;
  idempotencyKeysDeleted: number;
}

/** Arbitrary, fixed: the advisory lock key of the log retention job ("spindle-logs"). */
const RETENTION_LOCK = 7_316_420_118;

export async function pruneLogs(work: UnitOfWork, limits: RetentionLimits, now = new Date()): Promise<RetentionResult> {
  const cutoff = new Date(now.getTime() - limits.maxAgeSeconds * 1000);
  return work.run(
    async (tx) => {
      unaudited(tx, "server");
      const [lock] = await tx.$queryRaw<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK}::bigint) AS "locked"`;
      if (!lock?.locked) return { ran: false, sources: 0, linesDeleted: 0, idempotencyKeysDeleted: 0 };
      const byCount = await tx.$queryRaw<{ sourceId: string; prunedThrough: bigint }[]>`
        UPDATE "LogSource" SET "prunedThrough" = "lastCursor" - ${limits.maxLinesPerSource}, "updatedAt" = ${now.toISOString()}::timestamp(3)
        WHERE "lastCursor" - "prunedThrough" > ${limits.maxLinesPerSource}
        RETURNING "sourceId", "prunedThrough"`;
      const byAge = await tx.$queryRaw<{ sourceId: string; prunedThrough: bigint }[]>`
        WITH "old" AS (
          SELECT "sourceId", max("cursor") AS "through" FROM "LogLine" WHERE "at" < ${cutoff.toISOString()}::timestamp(3) GROUP BY "sourceId"
        )
        UPDATE "LogSource" s SET "prunedThrough" = "old"."through", "updatedAt" = ${now.toISOString()}::timestamp(3)
        FROM "old" WHERE s."sourceId" = "old"."sourceId" AND "old"."through" > s."prunedThrough"
        RETURNING s."sourceId", s."prunedThrough"`;
      const through = new Map<string, bigint>();
      for (const row of [...byCount, ...byAge]) {
        const value = BigInt(row.prunedThrough);
        if ((through.get(row.sourceId) ?? -1n) < value) through.set(row.sourceId, value);
      }
      let linesDeleted = 0;
      for (const [sourceId, cursor] of through) {
        linesDeleted += await tx.$executeRaw`DELETE FROM "LogLine" WHERE "sourceId" = ${sourceId}::uuid AND "cursor" <= ${cursor}`;
      }
      const idempotencyKeysDeleted =
        limits.idempotencyTtlSeconds === undefined
          ? 0
          : await tx.idempotencyKey.deleteMany({
              where: { createdAt: { lt: new Date(now.getTime() - limits.idempotencyTtlSeconds * 1000) } },
            }).then((r) => r.count);
      return { ran: true, sources: through.size, linesDeleted, idempotencyKeysDeleted };
    },
    { timeout: 60_000, maxWait: 10_000 },
  );
}

/** Runs pruneLogs every `intervalSeconds` until stopped; failures are logged and retried next time. */
export function startLogRetention(options: { work: UnitOfWork; limits: RetentionLimits; intervalSeconds: number; log: Logger }) {
  const { work, limits, log } = options;
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = pruneLogs(work, limits)
      .then((result) => {
        if (result.linesDeleted > 0 || result.idempotencyKeysDeleted > 0) log.info(result, "retention removed old log lines and idempotency keys");
      })
      .catch((error: unknown) => log.warn({ err: error }, "log retention failed; retrying at the next interval"))
      .finally(() => {
        running = undefined;
      });
  }, options.intervalSeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
